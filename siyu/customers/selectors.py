"""Reads of customers: lists within the caller's scope, the 360 profile and the timeline."""

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, access_customer, can, restrict_customers
from siyu.core.events import get_event_type
from siyu.core.models import Event
from siyu.customers.lifecycle import customer_record_ids, stages
from siyu.customers.models import (
    Customer,
    CustomerIdentity,
    CustomerMerge,
    CustomField,
    IdentityKind,
    RelationStatus,
    StaffRelation,
)
from siyu.groupchats.models import GroupChatMember
from siyu.tags.models import CustomerTag

TIMELINE_PAGE = 50


def customer_list(
    *,
    actor: StaffMember,
    query: str = "",
    stage: str = "",
    staff_id: int | None = None,
    unassigned: bool = False,
) -> QuerySet[Customer]:
    """Customers in the caller's scope, newest first. ``query`` matches name, remark or any
    identifier exactly (phone, unionid, external_userid)."""
    customers = restrict_customers(Customer.objects.all(), actor)
    if query:
        by_identity = CustomerIdentity.objects.filter(value=query).values("customer_id")
        by_remark = StaffRelation.objects.filter(remark__icontains=query).values("customer_id")
        customers = customers.filter(
            Q(name__icontains=query) | Q(pk__in=by_identity) | Q(pk__in=by_remark)
        )
    if stage:
        customers = customers.filter(stage=stage)
    if staff_id is not None:
        customers = customers.filter(
            pk__in=StaffRelation.objects.filter(staff_id=staff_id).values("customer_id")
        )
    if unassigned:
        # Nobody active follows them: every relation ended or sits with a member who left.
        active = StaffRelation.objects.filter(
            customer_id=OuterRef("pk"),
            status=RelationStatus.ACTIVE,
            staff__status="active",
        )
        customers = customers.filter(~Exists(active))
    return customers.order_by("-created_at", "-pk")


def customer_profile(*, actor: StaffMember, customer_id: int) -> dict[str, Any]:
    """Everything about one customer on one page: identities, every staff relation, groups,
    tags with who/what applied them, lifecycle, custom fields and merge history."""
    customer = access_customer(actor, customer_id)
    stage_names = {stage.key: stage.name for stage in stages()}
    fields = list(CustomField.objects.all())
    relations = (
        StaffRelation.objects.filter(customer=customer)
        .select_related("staff")
        .order_by("-added_at", "-pk")
    )
    tags = (
        CustomerTag.objects.filter(customer=customer)
        .select_related("tag__group", "staff")
        .order_by("tag__group__name", "tag__name")
    )
    groups = (
        GroupChatMember.objects.filter(customer=customer)
        .select_related("chat")
        .order_by("-join_time")
    )
    merges = CustomerMerge.objects.filter(Q(survivor=customer) | Q(absorbed=customer)).order_by(
        "-created_at"
    )
    return {
        "id": customer.pk,
        "name": customer.name,
        "avatar": customer.avatar,
        "gender": customer.gender,
        "type": customer.type,
        "corp_name": customer.corp_name,
        "created_at": customer.created_at,
        "stage": {"key": customer.stage, "name": stage_names.get(customer.stage, customer.stage)},
        "identities": [
            {"id": i.pk, "kind": i.kind, "value": _mask_phone(actor, i), "linked_at": i.created_at}
            for i in CustomerIdentity.objects.filter(customer=customer).order_by("pk")
        ],
        "relations": [
            {
                "id": r.pk,
                "staff_id": r.staff_id,
                "staff_userid": r.staff.userid,
                "staff_name": r.staff.name,
                "staff_account_kind": r.staff.account_kind,
                "external_userid": r.external_userid,
                "status": r.status,
                "remark": r.remark,
                "description": r.description,
                "add_way": r.add_way,
                "state": r.state,
                "added_at": r.added_at,
                "deleted_at": r.deleted_at,
                "delete_source": r.delete_source,
            }
            for r in relations
        ],
        "tags": [
            {
                "tag_id": t.tag_id,
                "name": t.tag.name,
                "group": t.tag.group.name,
                "source": t.source,
                "staff_userid": t.staff.userid if t.staff else "",
                "applied_at": t.applied_at,
            }
            for t in tags
        ],
        "groups": [
            {
                "chat_id": m.chat.chat_id,
                "name": m.chat.name,
                "status": m.chat.status,
                "joined_at": m.join_time,
                "left_at": m.left_at,
            }
            for m in groups
        ],
        "fields": [
            {"key": f.key, "name": f.name, "kind": f.kind, "value": customer.attributes.get(f.key)}
            for f in fields
        ],
        "merges": [
            {
                "id": m.pk,
                "survivor_id": m.survivor_id,
                "absorbed_id": m.absorbed_id,
                "reason": m.reason,
                "created_at": m.created_at,
                "undone_at": m.undone_at,
            }
            for m in merges
        ],
    }


def _mask_phone(actor: StaffMember, identity: CustomerIdentity) -> str:
    if identity.kind != IdentityKind.PHONE or can(actor, Action.VIEW_PHONE):
        return identity.value
    value = identity.value
    return value[:3] + "****" + value[-4:] if len(value) >= 7 else "****"


def customer_timeline(
    *,
    actor: StaffMember,
    customer_id: int,
    types: list[str] | None = None,
    before: datetime | None = None,
    limit: int = TIMELINE_PAGE,
) -> list[Event]:
    """The customer's events, newest first, including those of records merged into them."""
    customer = access_customer(actor, customer_id)
    for name in types or []:
        get_event_type(name)  # unknown types are an error, not an empty page
    events = Event.objects.filter(customer_id__in=customer_record_ids(customer))
    if types:
        events = events.filter(type__in=types)
    if before is not None:
        events = events.filter(occurred_at__lt=before)
    return list(events.order_by("-occurred_at", "-pk")[:limit])


def account_matrix(*, actor: StaffMember) -> dict[str, Any]:
    """The functional account matrix: customers (active relations, in the caller's scope) per
    lifecycle stage × kind of staff account (IP号 / 成交号 / 会员号 / 代理号 / 普通号)."""
    from django.db.models import Count

    from siyu.accounts.models import AccountKind

    customers = restrict_customers(Customer.objects.all(), actor)
    rows = (
        StaffRelation.objects.filter(customer__in=customers, status=RelationStatus.ACTIVE)
        .values("customer__stage", "staff__account_kind")
        .annotate(customers=Count("customer_id", distinct=True))
    )
    counts = {(r["customer__stage"], r["staff__account_kind"]): r["customers"] for r in rows}
    kinds = [{"key": key, "name": str(label)} for key, label in AccountKind.choices]
    return {
        "kinds": kinds,
        "stages": [
            {
                "key": stage.key,
                "name": stage.name,
                "counts": {k["key"]: counts.get((stage.key, k["key"]), 0) for k in kinds},
            }
            for stage in stages()
        ],
    }
