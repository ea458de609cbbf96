"""Reads for transfers. Everything is narrowed to the handover members the caller may see."""

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, restrict
from siyu.core.errors import NotFound
from siyu.customers.models import RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.transfers.models import IN_FLIGHT, ItemStatus, TransferItem, TransferJob


def transfer_job_list(
    *, actor: StaffMember, status: str = "", handover_id: int | None = None
) -> QuerySet[TransferJob]:
    qs = restrict(
        TransferJob.objects.all(), actor, Action.TRANSFER_CUSTOMERS, owner_field="handover_id"
    )
    if status:
        qs = qs.filter(status=status)
    if handover_id is not None:
        qs = qs.filter(handover_id=handover_id)
    counts = {
        f"{status}_count": Count("items", filter=Q(items__status=status), distinct=True)
        for status in ItemStatus.values
    }
    return (
        qs.select_related("handover", "takeover", "created_by")
        .annotate(**counts)
        .order_by("-created_at", "-pk")
    )


def transfer_job_get(*, actor: StaffMember, job_id: int) -> TransferJob:
    job = (
        restrict(
            TransferJob.objects.all(), actor, Action.TRANSFER_CUSTOMERS, owner_field="handover_id"
        )
        .select_related("handover", "takeover", "created_by")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        raise NotFound("transfer not found")
    return job


def transfer_members(*, actor: StaffMember, status: str = "") -> QuerySet[StaffMember]:
    """Members the caller may hand customers over from (or to)."""
    qs = restrict(StaffMember.objects.all(), actor, Action.TRANSFER_CUSTOMERS, owner_field="id")
    return qs.filter(status=status) if status else qs


def _in_transfer() -> Exists:
    return Exists(
        TransferItem.objects.filter(
            job__handover_id=OuterRef("staff_id"),
            external_userid=OuterRef("external_userid"),
            status__in=[*IN_FLIGHT, ItemStatus.ACCEPTED],
        )
    )


def handover_customers(
    *, actor: StaffMember, handover_id: int, query: str = ""
) -> QuerySet[StaffRelation]:
    """The handover member's active customers, each with whether a transfer is under way."""
    qs = restrict(
        StaffRelation.objects.filter(staff_id=handover_id, status=RelationStatus.ACTIVE),
        actor,
        Action.TRANSFER_CUSTOMERS,
        owner_field="staff_id",
    )
    if query:
        qs = qs.filter(
            Q(customer__name__icontains=query)
            | Q(remark__icontains=query)
            | Q(external_userid=query)
        )
    return (
        qs.select_related("customer", "staff")
        .annotate(in_transfer=_in_transfer())
        .order_by("-added_at", "-pk")
    )


def handover_group_chats(*, actor: StaffMember, handover_id: int) -> QuerySet[GroupChat]:
    handover = transfer_members(actor=actor).filter(pk=handover_id).first()
    if handover is None:
        return GroupChat.objects.none()
    return GroupChat.objects.filter(owner=handover, status=GroupChatStatus.ACTIVE).order_by("name")


def unassigned_list(
    *, actor: StaffMember, handover_id: int | None = None, query: str = ""
) -> QuerySet[StaffRelation]:
    """Departed members' customers that no transfer has taken (or is taking) over yet: they
    still belong to the company and wait for someone to inherit them."""
    qs = restrict(
        StaffRelation.objects.filter(status=RelationStatus.ACTIVE, staff__status=StaffStatus.LEFT),
        actor,
        Action.TRANSFER_CUSTOMERS,
        owner_field="staff_id",
    )
    if handover_id is not None:
        qs = qs.filter(staff_id=handover_id)
    if query:
        qs = qs.filter(Q(customer__name__icontains=query) | Q(remark__icontains=query))
    return (
        qs.annotate(in_transfer=_in_transfer())
        .filter(in_transfer=False)
        .select_related("customer", "staff")
        .order_by("staff__name", "-added_at", "-pk")
    )


def customers_in_transfer(*, handover: StaffMember) -> set[int]:
    """Customers of ``handover`` whose transfer is still under way (system use: the workspace
    keeps a departed member's tasks about them until ``customer.transferred`` moves them)."""
    return set(
        TransferItem.objects.filter(job__handover=handover, status__in=IN_FLIGHT).values_list(
            "customer_id", flat=True
        )
    )
