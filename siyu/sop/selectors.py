"""Reads of SOPs: the list, one SOP with its steps, its audience and its funnel."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.core.errors import NotFound
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.segments.selectors import segment_customers
from siyu.sop.models import Enrollment, EnrollmentStatus, Sop, SopKind, StepOutcome, StepRun


def sop_list(*, actor: StaffMember) -> QuerySet[Sop]:
    require(actor, Action.SOP_MANAGE)
    return Sop.objects.annotate(enrolled=Count("enrollments")).order_by("-created_at", "-pk")


def sop_get(*, actor: StaffMember, sop_id: int) -> Sop:
    require(actor, Action.SOP_MANAGE)
    sop = Sop.objects.filter(pk=sop_id).prefetch_related("steps__actions").first()
    if sop is None:
        raise NotFound(_("SOP 不存在"))
    return sop


def sop_audience(sop: Sop) -> QuerySet[Customer]:
    """Live customers in the SOP's audience whom some member can still reach."""
    customers = (
        segment_customers(sop.audience)
        if sop.audience
        else Customer.objects.filter(merged_into__isnull=True)
    )
    reachable = StaffRelation.objects.filter(
        customer_id=OuterRef("pk"), status=RelationStatus.ACTIVE
    )
    return customers.filter(Exists(reachable))


def sop_audience_count(*, sop: Sop) -> int:
    if sop.kind == SopKind.GROUP:
        return GroupChat.objects.filter(status=GroupChatStatus.ACTIVE).count()
    return sop_audience(sop).count()


def sop_funnel(*, sop: Sop) -> dict[str, Any]:
    """Enrolled, how many reached each step (its turn came) and ran its actions, converted."""
    totals = Enrollment.objects.filter(sop=sop).aggregate(
        enrolled=Count("pk"),
        active=Count("pk", filter=Q(status=EnrollmentStatus.ACTIVE)),
        completed=Count("pk", filter=Q(status=EnrollmentStatus.COMPLETED)),
        exited=Count("pk", filter=Q(status=EnrollmentStatus.EXITED)),
        failed=Count("pk", filter=Q(status=EnrollmentStatus.FAILED)),
        converted=Count("pk", filter=Q(converted=True)),
    )
    runs: dict[int, tuple[int, int]] = {
        step_id: (reached, done)
        for step_id, reached, done in StepRun.objects.filter(enrollment__sop=sop)
        .values("step_id")
        .annotate(reached=Count("pk"), done=Count("pk", filter=Q(outcome=StepOutcome.DONE)))
        .values_list("step_id", "reached", "done")
    }
    steps = [
        {
            "order": step.order,
            "reached": runs.get(step.pk, (0, 0))[0],
            "done": runs.get(step.pk, (0, 0))[1],
        }
        for step in sop.steps.order_by("order")
    ]
    enrolled = totals["enrolled"]
    rate = round(100 * totals["converted"] / enrolled, 1) if enrolled else 0.0
    return {**totals, "steps": steps, "conversion_rate": rate}
