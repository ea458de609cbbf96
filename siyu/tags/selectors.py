"""Reads of the taxonomy, customer tags, rules and tagging quality."""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, access_customer, require, restrict
from siyu.customers.models import RelationStatus, StaffRelation
from siyu.tags.models import MASS_SEND_TAG_SIZE, CustomerTag, Tag, TagGroup, TagRule


def taxonomy(*, actor: StaffMember, group_id: int | None = None) -> list[TagGroup]:
    """Every group with its tags, each tag annotated with ``customer_count`` and, for groups
    meant for mass sends, ``oversized`` when it holds more than ``MASS_SEND_TAG_SIZE``."""
    # The taxonomy is the whole team's; who carries a tag is not shown here.
    require(actor, Action.CUSTOMERS_VIEW)
    tags = Tag.objects.annotate(customer_count=Count("assignments__customer", distinct=True))
    groups_qs = TagGroup.objects.prefetch_related(Prefetch("tags", queryset=tags))
    if group_id is not None:
        groups_qs = groups_qs.filter(pk=group_id)
    groups = list(groups_qs)
    for group in groups:
        oversized = []
        for tag in group.tags.all():
            # customer_count is the annotation above.
            count: int = tag.customer_count  # type: ignore[attr-defined]
            tag.oversized = group.mass_send and count > MASS_SEND_TAG_SIZE  # type: ignore[attr-defined]
            if tag.oversized:  # type: ignore[attr-defined]
                oversized.append(tag)
        group.oversized_tags = oversized  # type: ignore[attr-defined]
    return groups


def customer_tag_list(*, actor: StaffMember, customer_id: int) -> QuerySet[CustomerTag]:
    """A customer's tags with who/what applied each and when (for the 360 profile)."""
    customer = access_customer(actor, customer_id, Action.CUSTOMERS_VIEW)
    return (
        CustomerTag.objects.filter(customer=customer)
        .select_related("tag__group", "staff", "applied_by", "rule")
        .order_by("-tag__group__order", "tag__group_id", "-tag__order", "tag_id", "applied_at")
    )


def tag_rule_list(*, actor: StaffMember) -> QuerySet[TagRule]:
    require(actor, Action.TAGS_MANAGE)
    return TagRule.objects.select_related("tag__group", "created_by").order_by("id")


@dataclass
class MemberCompliance:
    staff: StaffMember
    customers: int
    compliant: int
    missing: dict[int, int] = field(default_factory=dict)  # required group id → customers lacking

    @property
    def share(self) -> float | None:
        return round(self.compliant / self.customers, 4) if self.customers else None


@dataclass
class ComplianceReport:
    groups: list[TagGroup]
    members: list[MemberCompliance]


def tag_compliance(*, actor: StaffMember) -> ComplianceReport:
    """Per active member in the actor's scope: their active customers, how many lack a tag of
    each required group, and how many carry every required group (tagged by anyone: the
    customer's tags are the team's)."""
    members = list(
        restrict(StaffMember.objects.all(), actor, Action.TAGS_QUALITY, owner_field="id")
        .filter(status=StaffStatus.ACTIVE)
        .order_by("name", "userid")
    )
    groups = list(TagGroup.objects.filter(required=True))
    relations = StaffRelation.objects.filter(
        status=RelationStatus.ACTIVE, staff__in=[m.pk for m in members]
    )
    has = {
        f"has_{g.pk}": Exists(
            CustomerTag.objects.filter(customer_id=OuterRef("customer_id"), tag__group_id=g.pk)
        )
        for g in groups
    }
    every = Q(**{name: True for name in has}) if has else Q()
    rows = (
        relations.annotate(**has)
        .values("staff_id")
        .annotate(
            total=Count("customer_id", distinct=True),
            compliant=Count("customer_id", distinct=True, filter=every),
            **{
                f"missing_{g.pk}": Count(
                    "customer_id", distinct=True, filter=Q(**{f"has_{g.pk}": False})
                )
                for g in groups
            },
        )
        .order_by()
    )
    by_staff: dict[int, Any] = {row["staff_id"]: row for row in rows}
    report = []
    for member in members:
        row = by_staff.get(member.pk, {})
        report.append(
            MemberCompliance(
                staff=member,
                customers=row.get("total", 0),
                compliant=row.get("compliant", 0),
                missing={g.pk: row.get(f"missing_{g.pk}", 0) for g in groups},
            )
        )
    return ComplianceReport(groups=groups, members=report)


def tag_choices(*, actor: StaffMember) -> QuerySet[Tag]:
    """Every tag with its group, in taxonomy order, for pickers."""
    require(actor, Action.CUSTOMERS_VIEW)
    return Tag.objects.select_related("group").order_by("-group__order", "group_id", "-order", "id")
