"""Writes to customers and their staff relations. Each change records its customer event."""

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from siyu.accounts.models import StaffMember
from siyu.core.services import event_record
from siyu.customers import events
from siyu.customers.models import (
    Customer,
    CustomerIdentity,
    IdentityKind,
    RelationStatus,
    StaffRelation,
)

PROFILE_FIELDS = ("name", "avatar", "gender", "type", "corp_name")


def customer_for_identity(kind: str, value: str) -> Customer | None:
    identity = (
        CustomerIdentity.objects.select_related("customer").filter(kind=kind, value=value).first()
    )
    return identity.customer if identity else None


def identity_link(customer: Customer, kind: str, value: str) -> None:
    """Record that ``value`` identifies ``customer`` (no-op if it already identifies someone)."""
    _link(customer, kind, value)


def _link(customer: Customer, kind: str, value: str) -> bool:
    """True if this call linked it; False if ``value`` already identified someone (this customer,
    or another: merging is the customer core's job)."""
    try:
        with transaction.atomic():
            CustomerIdentity.objects.create(customer=customer, kind=kind, value=value)
    except IntegrityError:
        return False
    return True


def customer_ensure(
    *, external_userid: str, unionid: str = "", profile: dict[str, Any] | None = None
) -> Customer:
    """The customer behind ``external_userid``, created on first sight.

    A unionid that already belongs to a customer proves the same person (e.g. known from an H5
    visit), so the new external_userid is linked to them instead of creating a duplicate.
    """
    customer = customer_for_identity(IdentityKind.EXTERNAL_USERID, external_userid)
    if customer is None and unionid:
        customer = customer_for_identity(IdentityKind.UNIONID, unionid)
        if customer is not None:
            _link(customer, IdentityKind.EXTERNAL_USERID, external_userid)
    created = customer is None
    if customer is None:
        customer = Customer.objects.create()
        if not _link(customer, IdentityKind.EXTERNAL_USERID, external_userid):
            # A concurrent writer created this person a moment ago: theirs is the customer.
            customer.delete()
            winner = customer_for_identity(IdentityKind.EXTERNAL_USERID, external_userid)
            if winner is None:
                raise RuntimeError(f"identity {external_userid} vanished during creation")
            customer, created = winner, False
    if unionid and not _link(customer, IdentityKind.UNIONID, unionid):
        owner = customer_for_identity(IdentityKind.UNIONID, unionid)
        if owner is not None and owner.pk != customer.pk:
            # WeCom says this external_userid is that unionid: one person, proven. Merge.
            from siyu.customers.merging import identities_prove_same

            customer = identities_prove_same(
                [(IdentityKind.EXTERNAL_USERID, external_userid), (IdentityKind.UNIONID, unionid)],
                source="wecom",
            )
    if profile:
        changed = [
            f
            for f in PROFILE_FIELDS
            if f in profile and profile[f] not in (None, "") and getattr(customer, f) != profile[f]
        ]
        for field in changed:
            setattr(customer, field, profile[field])
        if changed and not created:
            customer.save(update_fields=[*changed, "updated_at"])
        elif changed:
            customer.save()
    return customer


def _is_stale(relation: StaffRelation, at: datetime) -> bool:
    return relation.changed_at is not None and relation.changed_at > at


def relation_added(
    *,
    staff: StaffMember,
    external_userid: str,
    at: datetime,
    source: str,
    state: str = "",
    add_way: int = 0,
    half: bool = False,
    welcome_code: str = "",
    idempotency_key: str | None = None,
    details: dict[str, Any] | None = None,
) -> StaffRelation | None:
    """A customer and a staff member became friends (or half-friends) at ``at``.

    Returns None when a newer change to the same relation was already applied (WeCom delivers
    out of order): the older add must not resurrect a later delete.
    """
    customer = customer_ensure(external_userid=external_userid)
    fields: dict[str, Any] = {
        "status": RelationStatus.HALF if half else RelationStatus.ACTIVE,
        "added_at": at,
        "changed_at": at,
        "deleted_at": None,
        "delete_source": "",
    }
    if state:
        fields["state"] = state
    if add_way:
        fields["add_way"] = add_way
    fields.update(details or {})
    # A first add is inserted whole: no second write of the row it just created.
    relation, created = StaffRelation.objects.select_for_update().get_or_create(
        staff=staff, external_userid=external_userid, defaults={"customer": customer, **fields}
    )
    if not created:
        if _is_stale(relation, at):
            return None
        for key, value in fields.items():
            setattr(relation, key, value)
        relation.save()
    event_record(
        type=events.CUSTOMER_HALF_ADDED if half else events.CUSTOMER_ADDED,
        source=source,
        customer_id=customer.pk,
        occurred_at=at,
        idempotency_key=idempotency_key,
        payload={
            "staff_userid": staff.userid,
            "external_userid": external_userid,
            "state": relation.state,
            "add_way": relation.add_way,
            "welcome_code": welcome_code,
            "relation_id": relation.pk,
        },
    )
    return relation


def relation_deleted(
    *,
    staff: StaffMember,
    external_userid: str,
    at: datetime,
    by: str,
    source: str,
    delete_source: str = "",
    idempotency_key: str | None = None,
) -> StaffRelation | None:
    """``by="customer"``: the customer deleted the member; ``by="staff"``: the reverse."""
    relation = (
        StaffRelation.objects.select_for_update()
        .filter(staff=staff, external_userid=external_userid)
        .first()
    )
    if relation is None:
        # A delete for a relation we never saw (its add callback was lost): record it anyway,
        # so the customer's history is complete; reconciliation fills in the profile.
        customer = customer_ensure(external_userid=external_userid)
        relation = StaffRelation.objects.create(
            customer=customer, staff=staff, external_userid=external_userid, changed_at=at
        )
    elif _is_stale(relation, at):
        return None
    relation.status = (
        RelationStatus.CUSTOMER_DELETED if by == "customer" else RelationStatus.STAFF_DELETED
    )
    relation.deleted_at = at
    relation.changed_at = at
    relation.delete_source = delete_source or by
    relation.save()
    event_record(
        type=events.CUSTOMER_DELETED_STAFF if by == "customer" else events.STAFF_DELETED_CUSTOMER,
        source=source,
        customer_id=relation.customer_id,
        occurred_at=at,
        idempotency_key=idempotency_key,
        payload={
            "staff_userid": staff.userid,
            "external_userid": external_userid,
            "source": relation.delete_source,
        },
    )
    return relation


def relation_refresh(
    *,
    staff: StaffMember,
    external_userid: str,
    follow: dict[str, Any],
    source: str,
    at: datetime,
    idempotency_key: str | None = None,
) -> StaffRelation | None:
    """Apply WeCom's current follow_user fields (remark, description, …) to the relation."""
    relation = StaffRelation.objects.filter(staff=staff, external_userid=external_userid).first()
    if relation is None:
        return None
    changes: dict[str, Any] = {}
    for field in ("remark", "description"):
        if field in follow and follow[field] != getattr(relation, field):
            changes[field] = follow[field]
    if "remark_mobiles" in follow and list(follow["remark_mobiles"]) != relation.remark_mobiles:
        changes["remark_mobiles"] = list(follow["remark_mobiles"])
    if not changes:
        return relation
    for key, value in changes.items():
        setattr(relation, key, value)
    relation.save(update_fields=list(changes))
    event_record(
        type=events.CUSTOMER_UPDATED,
        source=source,
        customer_id=relation.customer_id,
        occurred_at=at,
        idempotency_key=idempotency_key,
        payload={
            "staff_userid": staff.userid,
            "external_userid": external_userid,
            "changes": sorted(changes),
        },
    )
    return relation


def relation_transfer_failed(
    *,
    staff: StaffMember,
    external_userid: str,
    reason: str,
    at: datetime,
    source: str,
    idempotency_key: str | None = None,
) -> None:
    customer = customer_ensure(external_userid=external_userid)
    event_record(
        type=events.CUSTOMER_TRANSFER_FAILED,
        source=source,
        customer_id=customer.pk,
        occurred_at=at,
        idempotency_key=idempotency_key,
        payload={
            "takeover_userid": staff.userid,
            "external_userid": external_userid,
            "reason": reason,
        },
    )
