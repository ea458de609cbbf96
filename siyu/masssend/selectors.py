"""Reads of mass sends: lists within the data scope, one send's progress per staff member."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, restrict
from siyu.core.errors import NotFound
from siyu.masssend.models import Batch, BatchStatus, MassSend, Recipient, RecipientStatus


def mass_send_list(*, actor: StaffMember, status: str = "") -> QuerySet[MassSend]:
    """Sends created by members in ``actor``'s scope, newest first."""
    qs = restrict(
        MassSend.objects.select_related("created_by"),
        actor,
        Action.MASS_SEND_MANAGE,
        owner_field="created_by_id",
    )
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-pk")


def mass_send_get(*, actor: StaffMember, mass_send_id: int) -> MassSend:
    send = mass_send_list(actor=actor).filter(pk=mass_send_id).first()
    if send is None:
        raise NotFound("mass send not found")
    return send


@dataclass
class StaffProgress:
    staff_id: int | None
    name: str
    userid: str
    batches: int
    created: int  # WeCom tasks created
    failed: int  # batches WeCom refused
    confirmed: int  # tasks the member sent
    recipients: int
    delivered: int
    pending: int
    not_delivered: int  # not a friend, over quota, failed, cancelled

    @property
    def state(self) -> str:
        if self.failed and not self.created:
            return "failed"
        if self.created and self.confirmed == self.created:
            return "confirmed"
        return "pending"


def mass_send_progress(*, send: MassSend) -> list[StaffProgress]:
    """Per sender: tasks created / confirmed and their recipients' delivery (two grouped
    queries, whatever the size of the send)."""
    batches = {
        row["staff_id"]: row
        for row in Batch.objects.filter(mass_send=send)
        .values("staff_id", "staff__name", "staff__userid")
        .annotate(
            n=Count("pk"),
            created=Count("pk", filter=Q(status=BatchStatus.CREATED)),
            failed=Count("pk", filter=Q(status=BatchStatus.FAILED)),
            confirmed=Count("pk", filter=Q(confirmed_at__isnull=False)),
        )
    }
    recipients = {
        row["staff_id"]: row
        for row in Recipient.objects.filter(mass_send=send)
        .exclude(status=RecipientStatus.EXCLUDED)
        .values("staff_id")
        .annotate(
            n=Count("pk"),
            delivered=Count("pk", filter=Q(status=RecipientStatus.DELIVERED)),
            pending=Count(
                "pk", filter=Q(status__in=[RecipientStatus.PLANNED, RecipientStatus.PENDING])
            ),
        )
    }
    rows = []
    for staff_id, b in sorted(batches.items(), key=lambda item: item[1]["staff__name"] or ""):
        r = recipients.get(staff_id, {"n": 0, "delivered": 0, "pending": 0})
        rows.append(
            StaffProgress(
                staff_id=staff_id,
                name=b["staff__name"] or "",
                userid=b["staff__userid"] or "",
                batches=b["n"],
                created=b["created"],
                failed=b["failed"],
                confirmed=b["confirmed"],
                recipients=r["n"],
                delivered=r["delivered"],
                pending=r["pending"],
                not_delivered=r["n"] - r["delivered"] - r["pending"],
            )
        )
    return rows


def mass_send_counts(*, send: MassSend) -> dict[str, int]:
    """Recipients by status, and excluded ones by reason (``excluded:<reason>``)."""
    counts: dict[str, int] = {}
    for status, reason, n in (
        Recipient.objects.filter(mass_send=send)
        .values_list("status", "reason")
        .annotate(n=Count("pk"))
        .values_list("status", "reason", "n")
    ):
        key = f"excluded:{reason}" if status == RecipientStatus.EXCLUDED else status
        counts[key] = counts.get(key, 0) + n
    return counts


def mass_send_recipients(
    *, send: MassSend, status: str = "", staff_id: int | None = None
) -> QuerySet[Recipient]:
    qs = Recipient.objects.filter(mass_send=send).select_related("customer", "staff")
    if status:
        qs = qs.filter(status=status)
    if staff_id is not None:
        qs = qs.filter(staff_id=staff_id)
    return qs.order_by("pk")
