"""What an SOP step does: one function per action type, called inside the step's transaction.

Each returns a short word for the step run's ``detail`` ("created", "no_owner", …). They are
idempotent on the (enrollment, step) pair, and effects outside the database (WeCom messages,
webhook sends) are scheduled on commit by the services they call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.content.models import ContentItem
from siyu.content.services import tracked_url
from siyu.core.errors import SiyuError
from siyu.core.services import event_record
from siyu.customers.lifecycle import stage_set
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat
from siyu.masssend.services import mass_send_create
from siyu.sop import events
from siyu.sop.models import ActionType, Enrollment, Sop, SopAction, SopStep
from siyu.tags.models import TagSource
from siyu.tags.services import tags_apply, tags_remove
from siyu.workspace.services import alert_send, task_create


@dataclass(frozen=True)
class Context:
    sop: Sop
    step: SopStep
    enrollment: Enrollment
    customer: Customer | None
    group_chat: GroupChat | None
    owner: StaffMember | None  # who does the work: the customer's or the group's owner

    @property
    def dedupe_key(self) -> str:
        return f"sop:{self.enrollment.pk}:{self.step.pk}"


def subject_owner(customer: Customer | None, group_chat: GroupChat | None) -> StaffMember | None:
    """The active member the subject belongs to: the group's owner, or the customer's most
    recently added active relation."""
    if group_chat is not None:
        owner = group_chat.owner
        return owner if owner is not None and owner.status == StaffStatus.ACTIVE else None
    relation = (
        StaffRelation.objects.select_related("staff")
        .filter(customer=customer, status=RelationStatus.ACTIVE, staff__status=StaffStatus.ACTIVE)
        .order_by("-added_at", "-pk")
        .first()
    )
    return relation.staff if relation is not None else None


def _content(ctx: Context, config: dict[str, Any]) -> str:
    """The body to send, with the content item's tracked link for this customer."""
    body = config.get("body", "")
    item_id = config.get("content_item_id")
    if item_id and ctx.owner is not None:
        item = ContentItem.objects.filter(pk=item_id).first()
        if item is not None:
            url = tracked_url(
                item=item, sender=ctx.owner, source=f"sop:{ctx.sop.pk}", customer=ctx.customer
            )
            body = f"{body}\n{url}".strip()
    return body


def _task(ctx: Context, config: dict[str, Any], kind: str) -> str:
    if ctx.owner is None:
        return "no_owner"
    task_create(
        staff=ctx.owner,
        title=config["title"],
        kind=kind,
        customer=ctx.customer,
        body=_content(ctx, config),
        source=f"sop:{ctx.sop.pk}",
        dedupe_key=ctx.dedupe_key,
        due_at=timezone.now() + timedelta(hours=config.get("due_hours", 24)),
    )
    return "created"


def _staff_task(ctx: Context, action: SopAction) -> str:
    return _task(ctx, action.config, "sop")


def _mass_send(ctx: Context, action: SopAction) -> str:
    """A WeCom mass send (群发) to this customer from their owner, created in the step's
    transaction on behalf of the SOP's author (whose data scope and mass-send rights apply);
    the owner confirms it in 群发助手. Group SOPs, an SOP without an author, or a send the
    masssend app refuses (unreachable, over the monthly cap) become a staff task instead, so
    the content still reaches someone."""
    author = ctx.sop.created_by
    if ctx.customer is None or author is None:
        return _task(ctx, action.config, "masssend")
    try:
        with transaction.atomic():
            send = mass_send_create(
                actor=author,
                kind="customers",
                name=f"SOP {ctx.sop.name} · {ctx.step.order}"[:64],
                audience_kind="upload",
                audience={"customer_ids": [ctx.customer.pk]},
                text=action.config.get("body") or action.config["title"],
                content_item_id=action.config.get("content_item_id"),
            )
    except SiyuError as exc:
        return f"{_task(ctx, action.config, 'masssend')} ({exc.code})"
    return f"masssend:{send.pk}"


def _customer(ctx: Context) -> Customer:
    if ctx.customer is None:  # validation keeps these actions to customer SOPs
        raise ValueError(f"action needs a customer (sop {ctx.sop.pk})")
    return ctx.customer


def _tag_add(ctx: Context, action: SopAction) -> str:
    added = tags_apply(_customer(ctx), action.config["tag_ids"], source=TagSource.RULE)
    return "tagged" if added else "unchanged"


def _tag_remove(ctx: Context, action: SopAction) -> str:
    removed = tags_remove(_customer(ctx), action.config["tag_ids"], source=TagSource.RULE)
    return "untagged" if removed else "unchanged"


def _stage(ctx: Context, action: SopAction) -> str:
    moved = stage_set(
        customer=_customer(ctx),
        stage=action.config["stage"],
        source="system",
        reason=f"sop:{ctx.sop.pk}",
        idempotency_key=f"{ctx.dedupe_key}:{action.pk}",
    )
    return "moved" if moved else "unchanged"


def _notify(ctx: Context, action: SopAction) -> str:
    if ctx.owner is None:
        return "no_owner"
    text = _("【SOP %(name)s】%(text)s") % {"name": ctx.sop.name, "text": action.config["text"]}
    alert = alert_send(
        staff=ctx.owner,
        kind="sop",
        text=text,
        dedupe_key=f"{ctx.dedupe_key}:{action.pk}",
        customer=ctx.customer,
    )
    return "sent" if alert is not None else "suppressed"


def _webhook(ctx: Context, action: SopAction) -> str:
    # An event of its own: the webhooks app signs, sends and retries it for every endpoint
    # subscribed to sop.webhook.
    event_record(
        type=events.SOP_WEBHOOK,
        source="system",
        customer_id=ctx.customer.pk if ctx.customer else None,
        idempotency_key=f"{ctx.dedupe_key}:{action.pk}",
        payload={
            "sop_id": ctx.sop.pk,
            "step": ctx.step.order,
            "enrollment_id": ctx.enrollment.pk,
            "group_chat_id": ctx.group_chat.pk if ctx.group_chat else None,
            "data": action.config.get("data", {}),
        },
    )
    return "queued"


RUNNERS: dict[str, Callable[[Context, SopAction], str]] = {
    ActionType.TASK: _staff_task,
    ActionType.MASS_SEND: _mass_send,
    ActionType.TAG_ADD: _tag_add,
    ActionType.TAG_REMOVE: _tag_remove,
    ActionType.STAGE: _stage,
    ActionType.NOTIFY: _notify,
    ActionType.WEBHOOK: _webhook,
}


def action_run(ctx: Context, action: SopAction) -> str:
    return RUNNERS[action.type](ctx, action)
