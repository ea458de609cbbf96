"""Mirroring WeCom's corp tags and the tags on each customer relation."""

from typing import Any

from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.core.services import event_record
from siyu.customers.events import CUSTOMER_TAGS_CHANGED
from siyu.customers.models import Customer
from siyu.tags.models import CustomerTag, Tag, TagGroup


def tag_groups_upsert_from_wecom(groups: list[dict[str, Any]], *, complete: bool) -> dict[str, int]:
    """Apply get_corp_tag_list's ``tag_group`` list. With ``complete`` (the full list), groups and
    tags that WeCom no longer has are removed too. Returns counts of what changed."""
    counts = {"created": 0, "updated": 0, "deleted": 0}
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    for g in groups:
        if g.get("deleted"):
            counts["deleted"] += TagGroup.objects.filter(wecom_id=g["group_id"]).delete()[0] and 1
            continue
        group = (
            TagGroup.objects.filter(wecom_id=g["group_id"]).first()
            or TagGroup.objects.filter(name=g["group_name"], wecom_id__isnull=True).first()
        )
        if group is None:
            # A same-named local group would clash: WeCom's id wins and names stay unique.
            TagGroup.objects.filter(name=g["group_name"]).exclude(wecom_id=g["group_id"]).update(
                name=f"{g['group_name']}（旧）"
            )
            group = TagGroup.objects.create(
                wecom_id=g["group_id"], name=g["group_name"], order=g.get("order", 0)
            )
            counts["created"] += 1
        elif (group.name, group.order, group.wecom_id) != (
            g["group_name"],
            g.get("order", 0),
            g["group_id"],
        ):
            group.name, group.order, group.wecom_id = (
                g["group_name"],
                g.get("order", 0),
                g["group_id"],
            )
            group.save()
            counts["updated"] += 1
        seen_groups.add(g["group_id"])
        for t in g.get("tag", []):
            if t.get("deleted"):
                counts["deleted"] += Tag.objects.filter(wecom_id=t["id"]).delete()[0] and 1
                continue
            seen_tags.add(t["id"])
            tag = Tag.objects.filter(wecom_id=t["id"]).first()
            if tag is None:
                Tag.objects.create(
                    group=group, wecom_id=t["id"], name=t["name"], order=t.get("order", 0)
                )
                counts["created"] += 1
            elif (tag.name, tag.order, tag.group_id) != (t["name"], t.get("order", 0), group.pk):
                tag.name, tag.order, tag.group = t["name"], t.get("order", 0), group
                tag.save()
                counts["updated"] += 1
    if complete:
        stale_tags = Tag.objects.exclude(wecom_id__in=seen_tags).exclude(wecom_id__isnull=True)
        counts["deleted"] += stale_tags.count()
        stale_tags.delete()
        stale_groups = TagGroup.objects.exclude(wecom_id__in=seen_groups).exclude(
            wecom_id__isnull=True
        )
        counts["deleted"] += stale_groups.count()
        stale_groups.delete()
    return counts


def tags_delete_by_wecom_id(*, tag_ids: list[str] = (), group_ids: list[str] = ()) -> int:  # type: ignore[assignment]
    deleted = Tag.objects.filter(wecom_id__in=list(tag_ids)).delete()[0]
    return deleted + TagGroup.objects.filter(wecom_id__in=list(group_ids)).delete()[0]


def customer_tags_set_from_wecom(
    *,
    customer: Customer,
    staff: StaffMember,
    wecom_tag_ids: list[str],
    source: str,
    idempotency_key: str | None = None,
) -> tuple[list[str], list[str]]:
    """Make the corp tags ``staff`` carries on ``customer`` exactly ``wecom_tag_ids``.
    Unknown ids (a tag created a moment ago) are skipped; tag sync brings them later."""
    wanted = dict(Tag.objects.filter(wecom_id__in=wecom_tag_ids).values_list("id", "name"))
    current = dict(
        CustomerTag.objects.filter(
            customer=customer, staff=staff, tag__wecom_id__isnull=False
        ).values_list("tag_id", "tag__name")
    )
    added = [tid for tid in wanted if tid not in current]
    removed = [tid for tid in current if tid not in wanted]
    if not added and not removed:
        return [], []
    CustomerTag.objects.filter(customer=customer, staff=staff, tag_id__in=removed).delete()
    CustomerTag.objects.bulk_create(
        [
            CustomerTag(
                tenant_id=customer.tenant_id,
                customer=customer,
                staff=staff,
                tag_id=tid,
                source=source,
            )
            for tid in added
        ],
        ignore_conflicts=True,
    )
    event_record(
        type=CUSTOMER_TAGS_CHANGED,
        source=source,
        customer_id=customer.pk,
        occurred_at=timezone.now(),
        idempotency_key=idempotency_key,
        payload={
            "staff_userid": staff.userid,
            "added": sorted(wanted[t] for t in added),
            "removed": sorted(current[t] for t in removed),
        },
    )
    return [wanted[t] for t in added], [current[t] for t in removed]
