"""Running SOPs: enrolment (by event and by schedule), the step dispatcher, the goal exit.

Enrolment is incremental. Event triggers enrol from the event's delivery (once per event);
time triggers are advanced by ``sop_schedule_tick`` from a high-water mark kept on the SOP, so
each tick reads only what became due since the last one — never every customer again.

The dispatcher claims due enrolments in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
concurrent dispatchers take disjoint rows; SQLite serialises writers anyway) and runs each
due step in a savepoint together with its ``StepRun`` row, which is unique per (enrollment,
step): a step runs once per enrolment, whatever retries or duplicate dispatches happen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from siyu.core.models import Event, Tenant
from siyu.core.services import event_record, retry_delay
from siyu.core.tenancy import tenant_context
from siyu.customers.lifecycle import customer_record_ids
from siyu.customers.merging import customer_survivor
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.segments.selectors import segment_customers
from siyu.sop import events
from siyu.sop.actions import Context, action_run, subject_owner
from siyu.sop.models import (
    TIME_TRIGGERS,
    ElseAction,
    Enrollment,
    EnrollmentStatus,
    Reentry,
    Sop,
    SopKind,
    SopStatus,
    SopStep,
    StepOutcome,
    StepRun,
    TriggerKind,
)
from siyu.sop.selectors import sop_audience
from siyu.sop.services import local_datetime, weekly_cycle

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a step that keeps failing parks its enrolment as failed, never stuck


# --- enrolment -------------------------------------------------------------------------------


def _first_step(sop: Sop) -> SopStep | None:
    return SopStep.objects.filter(sop=sop).order_by("order").first()


def enrollment_start(
    *,
    sop: Sop,
    key: str,
    customer: Customer | None = None,
    group_chat: GroupChat | None = None,
    now: datetime | None = None,
) -> Enrollment | None:
    """Enrol one subject; None when the re-entry policy or an active enrolment says no.

    ``key`` names the cause (an event id, a weekly cycle); with re-entry "once" every cause
    maps to the same key, so a subject enters at most once in its life.
    """
    now = now or timezone.now()
    subject: dict[str, Any] = (
        {"customer": customer} if customer is not None else {"group_chat": group_chat}
    )
    previous = Enrollment.objects.filter(sop=sop, **subject)
    if sop.reentry == Reentry.ONCE:
        key = "once"
    elif previous.filter(
        Q(status=EnrollmentStatus.ACTIVE)
        | Q(enrolled_at__gt=now - timedelta(hours=sop.reentry_interval_hours))
    ).exists():
        return None
    step = _first_step(sop)
    if step is None:
        return None
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(
                sop=sop,
                key=key,
                step=step,
                next_due_at=now + timedelta(minutes=step.delay_minutes),
                enrolled_at=now,
                **subject,
            )
            event_record(
                type=events.SOP_ENROLLED,
                source="system",
                customer_id=customer.pk if customer is not None else None,
                idempotency_key=f"sop:{enrollment.pk}:enrolled",
                payload={"sop_id": sop.pk, "step": 0},
            )
    except IntegrityError:
        return None  # this cause enrolled it already, or it is still travelling
    return enrollment


def _matches(conditions: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Every condition holds; a list in the payload (tags added) matches if it contains it."""
    for key, wanted in conditions.items():
        value = payload.get(key)
        if isinstance(value, list):
            if wanted not in value:
                return False
        elif value != wanted or type(value) is not type(wanted):
            return False
    return True


def _in_audience(sop: Sop, customer: Customer) -> bool:
    return not sop.audience or segment_customers(sop.audience).filter(pk=customer.pk).exists()


def sop_event_handle(*, event: Event) -> list[Enrollment]:
    """The event subscriber: a goal event exits (converted) the customer's active enrolments;
    a trigger event enrols them into each active SOP it matches. Runs once per event."""
    if event.customer_id is None:
        return []
    customer = Customer.objects.filter(pk=event.customer_id).first()
    if customer is None:
        return []
    customer = customer_survivor(customer)
    _goal_reached(event, customer)
    enrolled = []
    for sop in Sop.objects.filter(
        status=SopStatus.ACTIVE, kind=SopKind.CUSTOMER, trigger_event=event.type
    ):
        if not _matches(sop.trigger.get("conditions", {}), event.payload):
            continue
        if not _in_audience(sop, customer):
            continue
        enrollment = enrollment_start(sop=sop, customer=customer, key=f"e{event.pk}")
        if enrollment is not None:
            enrolled.append(enrollment)
    return enrolled


def _goal_reached(event: Event, customer: Customer) -> None:
    now = timezone.now()
    active = Enrollment.objects.filter(
        customer_id__in=customer_record_ids(customer),
        status=EnrollmentStatus.ACTIVE,
        sop__goal_event=event.type,
    ).select_related("sop", "step")
    for enrollment in active:
        exited = Enrollment.objects.filter(pk=enrollment.pk, status=EnrollmentStatus.ACTIVE).update(
            status=EnrollmentStatus.EXITED, converted=True, finished_at=now, next_due_at=None
        )
        if exited:
            event_record(
                type=events.SOP_CONVERTED,
                source="system",
                customer_id=customer.pk,
                idempotency_key=f"sop:{enrollment.pk}:converted",
                payload={
                    "sop_id": enrollment.sop_id,
                    "step": enrollment.step.order if enrollment.step else 0,
                    "goal_event_id": event.pk,
                },
            )


# --- the dispatcher --------------------------------------------------------------------------


@dataclass
class _Plan:
    """One SOP's steps and actions, loaded once per batch."""

    sop: Sop
    steps: dict[int, SopStep] = field(default_factory=dict)
    by_order: dict[int, SopStep] = field(default_factory=dict)


def _plan(sop: Sop) -> _Plan:
    plan = _Plan(sop=sop)
    for step in SopStep.unscoped.filter(sop=sop).prefetch_related("actions").order_by("order"):
        plan.steps[step.pk] = step
        plan.by_order[step.order] = step
    return plan


def _claim(limit: int, now: datetime) -> list[Enrollment]:
    """Due enrolments of running SOPs, locked for this transaction; rows another dispatcher
    holds are skipped, not waited for."""
    return list(
        Enrollment.unscoped.select_for_update(skip_locked=True, of=("self",))
        .select_related("customer")
        .filter(status=EnrollmentStatus.ACTIVE, next_due_at__lte=now, sop__status=SopStatus.ACTIVE)
        .order_by("next_due_at")[:limit]
    )


def sop_dispatch_batch(*, limit: int = 200, now: datetime | None = None) -> int:
    """Run the due step of up to ``limit`` enrolments (all tenants); returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = _claim(limit, now)
        plans: dict[int, _Plan] = {}
        tenants: dict[int, Tenant] = {}
        for enrollment in rows:
            if enrollment.tenant_id not in tenants:
                tenants[enrollment.tenant_id] = Tenant.objects.get(pk=enrollment.tenant_id)
            with tenant_context(tenants[enrollment.tenant_id]):
                if enrollment.sop_id not in plans:
                    plans[enrollment.sop_id] = _plan(Sop.objects.get(pk=enrollment.sop_id))
                enrollment_step_run(enrollment=enrollment, plan=plans[enrollment.sop_id], now=now)
    return len(rows)


def sop_dispatch(*, limit: int = 200, budget_seconds: float = 25.0) -> int:
    """Dispatch batches until nothing is due or the time budget is spent."""
    started = timezone.now()
    total = 0
    while (timezone.now() - started).total_seconds() < budget_seconds:
        done = sop_dispatch_batch(limit=limit)
        total += done
        if done < limit:
            break
    return total


def enrollment_step_run(*, enrollment: Enrollment, plan: _Plan, now: datetime) -> str:
    """Run ``enrollment``'s due step and advance it. Call inside a transaction holding the
    row; failures roll back the step's savepoint and retry later, or park it as failed."""
    step = plan.steps.get(enrollment.step_id or 0)
    if step is None:  # the step is gone (cannot happen while steps are frozen): finish
        _finish(enrollment, EnrollmentStatus.COMPLETED, now)
        return "completed"
    try:
        with transaction.atomic():
            outcome = _run(enrollment, plan, step, now)
    except IntegrityError:
        # The StepRun exists: a duplicate dispatch ran this step already and advanced it.
        return "duplicate"
    except Exception as exc:
        logger.exception("SOP %s step %s failed for %s", plan.sop.pk, step.pk, enrollment.pk)
        _failed(enrollment, f"{type(exc).__name__}: {exc}", now)
        return "failed"
    return outcome


def _run(enrollment: Enrollment, plan: _Plan, step: SopStep, now: datetime) -> str:
    customer = customer_survivor(enrollment.customer) if enrollment.customer else None
    group_chat = (
        GroupChat.objects.select_related("owner").get(pk=enrollment.group_chat_id)
        if enrollment.group_chat_id
        else None
    )
    matched = (
        not step.condition
        or customer is None
        or segment_customers(step.condition).filter(pk=customer.pk).exists()
    )
    detail: dict[str, str] = {}
    following: SopStep | None
    if matched:
        outcome = StepOutcome.DONE
        ctx = Context(
            sop=plan.sop,
            step=step,
            enrollment=enrollment,
            customer=customer,
            group_chat=group_chat,
            owner=subject_owner(customer, group_chat),
        )
        for action in step.actions.all():
            detail[f"{action.order}:{action.type}"] = action_run(ctx, action)
        following = plan.by_order.get(step.order + 1)
    elif step.else_action == ElseAction.GOTO:
        outcome, following = StepOutcome.BRANCHED, plan.by_order.get(step.else_goto or 0)
    elif step.else_action == ElseAction.EXIT:
        outcome, following = StepOutcome.EXITED, None
    else:
        outcome, following = StepOutcome.SKIPPED, plan.by_order.get(step.order + 1)
    # Written with the actions: the unique (enrollment, step) turns a second run into an
    # IntegrityError that rolls the whole step back.
    StepRun.objects.create(
        enrollment=enrollment,
        step=step,
        outcome=outcome,
        detail=detail,
        due_at=enrollment.next_due_at or now,
        ran_at=timezone.now(),  # the wall clock, not the batch's: the scheduler lag is real
    )
    event_record(
        type=events.SOP_STEP_REACHED,
        source="system",
        customer_id=customer.pk if customer is not None else None,
        idempotency_key=f"sop:{enrollment.pk}:{step.pk}",
        payload={"sop_id": plan.sop.pk, "step": step.order, "outcome": outcome},
    )
    if following is None:
        status = EnrollmentStatus.EXITED if outcome == StepOutcome.EXITED else None
        _finish(enrollment, status or EnrollmentStatus.COMPLETED, now)
    else:
        enrollment.step = following
        enrollment.next_due_at = now + timedelta(minutes=following.delay_minutes)
        enrollment.attempts = 0
        enrollment.save(update_fields=["step", "next_due_at", "attempts"])
    return str(outcome)


def _finish(enrollment: Enrollment, status: str, now: datetime) -> None:
    enrollment.status, enrollment.finished_at, enrollment.next_due_at = status, now, None
    enrollment.save(update_fields=["status", "finished_at", "next_due_at"])


def _failed(enrollment: Enrollment, error: str, now: datetime) -> None:
    attempts = enrollment.attempts + 1
    changes: dict[str, Any] = {"attempts": attempts, "last_error": error[:2000]}
    if attempts >= MAX_ATTEMPTS:
        changes.update(status=EnrollmentStatus.FAILED, finished_at=now, next_due_at=None)
    else:
        changes["next_due_at"] = now + retry_delay(attempts)
    Enrollment.unscoped.filter(pk=enrollment.pk).update(**changes)


# --- the scheduler (time triggers) -----------------------------------------------------------


def sop_schedule_tick(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Advance every running time-triggered SOP by at most ``batch`` subjects; returns how
    many were enrolled. Overlapping ticks skip an SOP another tick is advancing."""
    now = now or timezone.now()
    total = 0
    for sop_id, tenant_id in Sop.unscoped.filter(
        status=SopStatus.ACTIVE, trigger_kind__in=TIME_TRIGGERS
    ).values_list("pk", "tenant_id"):
        with tenant_context(Tenant.objects.get(pk=tenant_id)):
            total += sop_schedule_run(sop_id=sop_id, now=now, batch=batch)
    return total


def sop_schedule_run(*, sop_id: int, now: datetime, batch: int = 1000) -> int:
    with transaction.atomic():
        sop = (
            Sop.objects.select_for_update(skip_locked=True)
            .filter(pk=sop_id, status=SopStatus.ACTIVE)
            .first()
        )
        if sop is None:
            return 0
        if sop.trigger_kind == TriggerKind.ADDED_DAYS:
            enrolled = _added_days(sop, now, batch)
        elif sop.trigger_kind == TriggerKind.SILENCE:
            enrolled = _silence(sop, now, batch)
        else:
            enrolled = _cycle(sop, now, batch)
        sop.save(update_fields=["cursor_at", "cursor_id", "cycle_key", "cycle_done"])
    return enrolled


def _enrol_all(sop: Sop, subjects: Iterable[tuple[str, Customer]], now: datetime) -> int:
    count = 0
    for key, customer in subjects:
        if _in_audience(sop, customer) and enrollment_start(
            sop=sop, customer=customer, key=key, now=now
        ):
            count += 1
    return count


def _has_active_relation() -> Exists:
    return Exists(
        StaffRelation.objects.filter(customer_id=OuterRef("pk"), status=RelationStatus.ACTIVE)
    )


def _added_days(sop: Sop, now: datetime, batch: int) -> int:
    """Customers whose add is N days old, read in (occurred_at, id) order from the event log's
    (type, occurred_at) index, starting after the high-water mark."""
    cutoff = now - timedelta(days=sop.trigger["days"])
    adds = Event.objects.filter(
        type="customer.added", occurred_at__lte=cutoff, customer_id__isnull=False
    )
    if sop.cursor_at is not None:
        adds = adds.filter(
            Q(occurred_at__gt=sop.cursor_at) | Q(occurred_at=sop.cursor_at, pk__gt=sop.cursor_id)
        )
    rows = list(
        adds.order_by("occurred_at", "pk").values_list("pk", "customer_id", "occurred_at")[:batch]
    )
    if not rows:
        return 0
    sop.cursor_id, _cid, sop.cursor_at = rows[-1]
    live = _live_customers([cid for _pk, cid, _at in rows if cid is not None])
    return _enrol_all(sop, ((f"a{pk}", live[cid]) for pk, cid, _at in rows if cid in live), now)


def _live_customers(ids: list[int]) -> dict[int, Customer]:
    """The survivors of these customers who still have an active relation, by original id."""
    found = {c.pk: customer_survivor(c) for c in Customer.objects.filter(pk__in=ids)}
    still = set(
        Customer.objects.filter(pk__in=[c.pk for c in found.values()])
        .filter(_has_active_relation())
        .values_list("pk", flat=True)
    )
    return {cid: c for cid, c in found.items() if c.pk in still}


def _silence(sop: Sop, now: datetime, batch: int) -> int:
    """Customers whose latest event is N days old. The event log is read once, in id order
    from the high-water mark, up to events recorded N days ago: each event is looked at once,
    and enrols its customer only if nothing happened to them since (SOP bookkeeping aside)."""
    cutoff = now - timedelta(days=sop.trigger["days"])
    rows = list(
        Event.objects.filter(pk__gt=sop.cursor_id)
        .order_by("pk")
        .values_list("pk", "customer_id", "type", "occurred_at", "recorded_at")[:batch]
    )
    candidates: list[tuple[int, int]] = []
    for pk, customer_id, type_, occurred_at, recorded_at in rows:
        if recorded_at > cutoff:
            break  # ids grow with recording time: the rest is not silent long enough yet
        sop.cursor_id = pk
        if customer_id is None or type_.startswith("sop."):
            continue
        later = (
            Event.objects.filter(customer_id=customer_id, occurred_at__gt=occurred_at)
            .exclude(type__startswith="sop.")
            .exists()
        )
        if not later:
            candidates.append((pk, customer_id))
    live = _live_customers([cid for _pk, cid in candidates])
    return _enrol_all(sop, ((f"s{pk}", live[cid]) for pk, cid in candidates if cid in live), now)


def _cycle(sop: Sop, now: datetime, batch: int) -> int:
    """A one-off date or a weekly occurrence: when it comes, enrol the audience in id order
    from the high-water mark, ``batch`` at a time, until it is done for this occurrence."""
    if sop.trigger_kind == TriggerKind.DATE:
        if local_datetime(sop.trigger["at"]) > now:
            return 0
        key = "date"
    else:
        key = weekly_cycle(sop.trigger, now)
    if sop.cycle_key != key:
        sop.cycle_key, sop.cycle_done, sop.cursor_id = key, False, 0
    if sop.cycle_done:
        return 0
    count = 0
    if sop.kind == SopKind.GROUP:
        chats = list(
            GroupChat.objects.filter(status=GroupChatStatus.ACTIVE, pk__gt=sop.cursor_id).order_by(
                "pk"
            )[:batch]
        )
        for chat in chats:
            if enrollment_start(sop=sop, group_chat=chat, key=f"c{key}", now=now):
                count += 1
        picked = [chat.pk for chat in chats]
    else:
        customers = sop_audience(sop).filter(pk__gt=sop.cursor_id).order_by("pk")[:batch]
        picked = []
        for customer in customers:
            picked.append(customer.pk)
            if enrollment_start(sop=sop, customer=customer, key=f"c{key}", now=now):
                count += 1
    if picked:
        sop.cursor_id = picked[-1]
    sop.cycle_done = len(picked) < batch
    return count
