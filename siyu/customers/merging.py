"""One person, one customer: merges (by proof or by hand), their undo, and splits.

A merge moves the absorbed record's identities, relations, tags and group memberships to the
survivor and points the absorbed record at it (``merged_into``); the moved row ids are kept on
a ``CustomerMerge`` so an undo puts exactly those rows back. Events stay on the record they were
written for; the timeline reads the survivor together with everything merged into it.
"""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, access_customer
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.services import event_record
from siyu.customers import events
from siyu.customers.models import (
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
    StaffRelation,
)
from siyu.groupchats.models import GroupChatMember
from siyu.tags.models import CustomerTag


def customer_survivor(customer: Customer) -> Customer:
    """The live record for ``customer``: itself, or the one it was merged into (and so on)."""
    while customer.merged_into_id is not None:
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def _may_merge(by: StaffMember | None, *customer_ids: int) -> None:
    # A person acting (console, API) must see every record involved; proof-driven merges
    # (``by`` None) come from WeCom or WeChat themselves.
    if by is not None:
        for customer_id in customer_ids:
            access_customer(by, customer_id, Action.CUSTOMERS_MERGE)


def _locked(*ids: int) -> dict[int, Customer]:
    # Lock in id order so two merges of the same pair cannot deadlock.
    rows = Customer.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    found = {row.pk: row for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"customer {missing[0]} not found")
    return found


def _unionids(customer_id: int) -> set[str]:
    return set(
        CustomerIdentity.objects.filter(
            customer_id=customer_id, kind=IdentityKind.UNIONID
        ).values_list("value", flat=True)
    )


def customer_merge(
    *,
    survivor_id: int,
    absorbed_id: int,
    source: str,
    reason: str = "manual",
    by: StaffMember | None = None,
) -> CustomerMerge:
    """Merge ``absorbed`` into ``survivor``. Refuses merging a record into itself, merging a
    record that is merged already (either side: that would make chains or cycles), and merging
    two different WeChat accounts (two unionids are two people as far as proof goes)."""
    _may_merge(by, survivor_id, absorbed_id)
    if survivor_id == absorbed_id:
        raise InvalidInput("a customer cannot be merged into itself")
    with transaction.atomic():
        rows = _locked(survivor_id, absorbed_id)
        survivor, absorbed = rows[survivor_id], rows[absorbed_id]
        for row in (survivor, absorbed):
            if row.merged_into_id is not None:
                raise Conflict(
                    f"customer {row.pk} was merged into {row.merged_into_id} already; "
                    "merge into that customer instead"
                )
        a, b = _unionids(survivor.pk), _unionids(absorbed.pk)
        if a and b and not a & b:
            raise Conflict(
                "these customers are different WeChat accounts (different unionid); "
                "they cannot be merged"
            )
        identity_ids = list(
            CustomerIdentity.objects.filter(customer=absorbed).values_list("pk", flat=True)
        )
        relation_ids = list(
            StaffRelation.objects.filter(customer=absorbed).values_list("pk", flat=True)
        )
        # A tag both records carry (same tag, same member) stays behind on the absorbed record.
        kept = set(CustomerTag.objects.filter(customer=survivor).values_list("tag_id", "staff_id"))
        tag_ids = [
            pk
            for pk, tag_id, staff_id in CustomerTag.objects.filter(customer=absorbed).values_list(
                "pk", "tag_id", "staff_id"
            )
            if (tag_id, staff_id) not in kept
        ]
        member_ids = list(
            GroupChatMember.objects.filter(customer=absorbed).values_list("pk", flat=True)
        )
        CustomerIdentity.objects.filter(pk__in=identity_ids).update(customer=survivor)
        StaffRelation.objects.filter(pk__in=relation_ids).update(customer=survivor)
        CustomerTag.objects.filter(pk__in=tag_ids).update(customer=survivor)
        GroupChatMember.objects.filter(pk__in=member_ids).update(customer=survivor)
        filled = {
            key: value
            for key, value in absorbed.attributes.items()
            if key not in survivor.attributes
        }
        if filled:
            Customer.objects.filter(pk=survivor.pk).update(
                attributes={**survivor.attributes, **filled}
            )
        Customer.objects.filter(pk=absorbed.pk).update(merged_into=survivor)
        merge = CustomerMerge.objects.create(
            survivor=survivor,
            absorbed=absorbed,
            identity_ids=identity_ids,
            relation_ids=relation_ids,
            tag_ids=tag_ids,
            group_member_ids=member_ids,
            reason=reason,
            by=by,
        )
        payload = {
            "merge_id": merge.pk,
            "survivor_id": survivor.pk,
            "absorbed_id": absorbed.pk,
            "reason": reason,
            "by": by.userid if by else "",
            "filled_attributes": sorted(filled),
        }
        event_record(
            type=events.CUSTOMER_MERGED, source=source, customer_id=survivor.pk, payload=payload
        )
        if by is not None:
            from siyu.audit.services import audit_record

            audit_record(actor=by, action="customer.merge", target=survivor, details=payload)
    return merge


def merge_undo(*, merge_id: int, source: str, by: StaffMember | None = None) -> CustomerMerge:
    """Put back exactly the rows the merge moved. The survivor must not have been merged
    elsewhere since (undo that later merge first)."""
    with transaction.atomic():
        merge = CustomerMerge.objects.select_for_update().filter(pk=merge_id).first()
        if merge is None:
            raise NotFound("merge not found")
        _may_merge(by, merge.survivor_id)
        if merge.undone_at is not None:
            raise Conflict("this merge was undone already")
        rows = _locked(merge.survivor_id, merge.absorbed_id)
        survivor, absorbed = rows[merge.survivor_id], rows[merge.absorbed_id]
        if survivor.merged_into_id is not None:
            raise Conflict(
                f"customer {survivor.pk} was merged into {survivor.merged_into_id} since; "
                "undo that merge first"
            )
        # Rows that left the survivor since (a split) stay where they are now.
        CustomerIdentity.objects.filter(pk__in=merge.identity_ids, customer=survivor).update(
            customer=absorbed
        )
        StaffRelation.objects.filter(pk__in=merge.relation_ids, customer=survivor).update(
            customer=absorbed
        )
        CustomerTag.objects.filter(pk__in=merge.tag_ids, customer=survivor).update(
            customer=absorbed
        )
        GroupChatMember.objects.filter(pk__in=merge.group_member_ids, customer=survivor).update(
            customer=absorbed
        )
        Customer.objects.filter(pk=absorbed.pk).update(merged_into=None)
        merge.undone_at = timezone.now()
        merge.save(update_fields=["undone_at"])
        payload = {
            "merge_id": merge.pk,
            "survivor_id": survivor.pk,
            "absorbed_id": absorbed.pk,
            "by": by.userid if by else "",
        }
        event_record(
            type=events.CUSTOMER_UNMERGED, source=source, customer_id=survivor.pk, payload=payload
        )
        if by is not None:
            from siyu.audit.services import audit_record

            audit_record(actor=by, action="customer.unmerge", target=survivor, details=payload)
    return merge


def customer_split(
    *, customer_id: int, identity_ids: list[int], source: str, by: StaffMember | None = None
) -> Customer:
    """Move some identities (and, with an external_userid, its staff relations and the tags
    those members put on) to a new customer: the operator says these are a different person."""
    _may_merge(by, customer_id)
    if not identity_ids:
        raise InvalidInput("choose at least one identity to split off")
    with transaction.atomic():
        original = _locked(customer_id)[customer_id]
        if original.merged_into_id is not None:
            raise Conflict(f"customer {original.pk} was merged into {original.merged_into_id}")
        identities = list(CustomerIdentity.objects.filter(customer=original))
        moving = [i for i in identities if i.pk in set(identity_ids)]
        if len(moving) != len(set(identity_ids)):
            raise InvalidInput("some identities do not belong to this customer")
        if len(moving) == len(identities):
            raise InvalidInput("leave at least one identity on the original customer")
        external_ids = [i.value for i in moving if i.kind == IdentityKind.EXTERNAL_USERID]
        relations = StaffRelation.objects.filter(
            customer=original, external_userid__in=external_ids
        )
        staff_ids = list(relations.values_list("staff_id", flat=True))
        twin = Customer.objects.create(
            name=original.name,
            avatar=original.avatar,
            gender=original.gender,
            type=original.type,
            corp_name=original.corp_name,
            stage=original.stage,
        )
        CustomerIdentity.objects.filter(pk__in=[i.pk for i in moving]).update(customer=twin)
        relations.update(customer=twin)
        CustomerTag.objects.filter(customer=original, staff_id__in=staff_ids).update(customer=twin)
        GroupChatMember.objects.filter(customer=original, member_id__in=external_ids).update(
            customer=twin
        )
        payload = {
            "original_id": original.pk,
            "new_id": twin.pk,
            "identities": [f"{i.kind}:{i.value}" for i in moving],
            "by": by.userid if by else "",
        }
        for customer in (original, twin):
            event_record(
                type=events.CUSTOMER_SPLIT, source=source, customer_id=customer.pk, payload=payload
            )
        if by is not None:
            from siyu.audit.services import audit_record

            audit_record(actor=by, action="customer.split", target=original, details=payload)
    return twin


def identities_prove_same(
    identities: list[tuple[str, str]], *, source: str, profile_name: str = ""
) -> Customer:
    """Identifiers that a trusted source says belong to one person (WeCom's external_userid
    with its unionid; WeChat OAuth's openid with its unionid). Unknown ones are linked to the
    customer the others name; records they name separately are merged into the oldest. A
    customer is created when none is known."""
    if not identities:
        raise InvalidInput("no identifiers given")
    for kind, value in identities:
        if kind not in IdentityKind.values or not value or len(value) > 128:
            raise InvalidInput(f"bad identifier {kind}:{value!r}")
    query = Q()
    for kind, value in identities:
        query |= Q(kind=kind, value=value)
    with transaction.atomic():
        known = list(CustomerIdentity.objects.filter(query).select_related("customer"))
        # Merges move identities, so an identity always names a live (unmerged) customer.
        owners = {identity.customer_id: identity.customer for identity in known}
        if owners:
            survivor = owners[min(owners)]
        else:
            survivor = Customer.objects.create(name=profile_name)
        for other_id in sorted(owners):
            if other_id == survivor.pk:
                continue
            try:
                with transaction.atomic():
                    customer_merge(
                        survivor_id=survivor.pk,
                        absorbed_id=other_id,
                        source=source,
                        reason="proven",
                    )
            except Conflict:
                # Two unionids: not the same person after all; leave both as they are.
                continue
        have = {(i.kind, i.value) for i in known}
        for kind, value in identities:
            if (kind, value) in have:
                continue
            _, created = CustomerIdentity.objects.get_or_create(
                kind=kind, value=value, defaults={"customer": survivor}
            )
            if created:
                event_record(
                    type=events.CUSTOMER_IDENTITY_LINKED,
                    source=source,
                    customer_id=survivor.pk,
                    payload={"kind": kind, "value": value},
                )
    return survivor


def identity_link_manual(
    *, customer: Customer, kind: str, value: str, by: StaffMember
) -> CustomerIdentity:
    """Link an identifier by hand. One naming another customer is a conflict: merge instead."""
    if kind == IdentityKind.PHONE:
        value = phone_normalise(value)
    existing = CustomerIdentity.objects.filter(kind=kind, value=value).first()
    if existing is not None:
        if existing.customer_id == customer.pk:
            return existing
        raise Conflict(
            f"{kind} {value} identifies customer {existing.customer_id}; merge the two instead",
            details={"customer_id": existing.customer_id},
        )
    with transaction.atomic():
        identity = CustomerIdentity.objects.create(customer=customer, kind=kind, value=value)
        event_record(
            type=events.CUSTOMER_IDENTITY_LINKED,
            source="api",
            customer_id=customer.pk,
            payload={"kind": kind, "value": value, "by": by.userid},
        )
    return identity


def phone_normalise(raw: str) -> str:
    """Mainland mobile numbers as 11 digits (spaces, dashes and +86/0086 dropped)."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    for prefix in ("0086", "86"):
        if len(digits) == 11 + len(prefix) and digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if len(digits) != 11 or not digits.startswith("1"):
        raise InvalidInput(f"{raw!r} is not a mainland mobile number (11 digits starting with 1)")
    return digits
