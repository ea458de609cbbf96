"""Adds through a participant's code count; deletions within the window are subtracted."""

from siyu.channels.state import State, state_handler
from siyu.core.events import subscriber
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_DELETED_STAFF, STAFF_DELETED_CUSTOMER
from siyu.customers.models import StaffRelation
from siyu.fission import services
from siyu.fission.models import Invite, InviteStatus


@state_handler(services.STATE_KIND)
def fission_add(*, relation: StaffRelation, event: Event, state: State) -> None:
    if len(state.parts) != 2 or not all(part.isdigit() for part in state.parts):
        return  # not a state this app wrote
    services.invite_record(
        relation=relation,
        event=event,
        campaign_id=int(state.parts[0]),
        participant_id=int(state.parts[1]),
    )


def _counted_invitee(event: Event) -> bool:
    # Asked when the delete is written: most deletes have nothing to do with a campaign.
    return Invite.objects.filter(invitee_id=event.customer_id, status=InviteStatus.COUNTED).exists()


@subscriber(
    CUSTOMER_DELETED_STAFF,
    STAFF_DELETED_CUSTOMER,
    name="fission.invite_deleted",
    applies=_counted_invitee,
)
def invite_deleted(event: Event) -> None:
    if event.customer_id is None:
        return
    services.invites_deleted(
        customer_id=event.customer_id,
        staff_userid=str(event.payload.get("staff_userid", "")),
        at=event.occurred_at,
    )
