"""Transfer events, and the callbacks that settle a transfer before the next poll would.

WeCom tells of a transfer's outcome in two ways: ``transfer_result`` (polled) and callbacks —
``transfer_fail`` when the customer refuses, ``del_external_contact`` with
``Source=DELETE_BY_TRANSFER`` when it completes. The wecom handlers record those as customer
events; the subscribers below match them to the waiting item, whichever comes first.
"""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type, subscriber
from siyu.core.models import Event

CUSTOMER_TRANSFER_REQUESTED = event_type("customer.transfer_requested", _("客户继承已发起"))
CUSTOMER_TRANSFERRED = event_type("customer.transferred", _("客户已由接替成员继承"))

# Declared by the customers app; the handlers record them from callbacks.
TRANSFER_FAILED = "customer.transfer_failed"
DELETED_BY_STAFF = "customer.deleted_by_staff"
DELETE_BY_TRANSFER = "DELETE_BY_TRANSFER"


def _from_callback(event: Event) -> bool:
    # Our own transfer_failed events carry the item; those need no matching.
    return "item_id" not in event.payload


def _completed_by_transfer(event: Event) -> bool:
    return event.payload.get("source") == DELETE_BY_TRANSFER


@subscriber(TRANSFER_FAILED, name="transfers.refused", applies=_from_callback)
def on_transfer_failed(event: Event) -> None:
    from siyu.transfers.services import transfer_item_refused

    transfer_item_refused(
        takeover_userid=str(event.payload.get("takeover_userid", "")),
        external_userid=str(event.payload.get("external_userid", "")),
        reason=str(event.payload.get("reason", "")),
    )


@subscriber(DELETED_BY_STAFF, name="transfers.completed", applies=_completed_by_transfer)
def on_deleted_by_transfer(event: Event) -> None:
    from siyu.transfers.services import transfer_item_completed

    transfer_item_completed(
        handover_userid=str(event.payload.get("staff_userid", "")),
        external_userid=str(event.payload.get("external_userid", "")),
        at=event.occurred_at,
    )
