"""Full sync from WeCom, and the reconciliation that heals what callbacks missed.

Callbacks can be lost, duplicated or reordered; WeCom's lists are the truth. ``reconcile`` pulls
the address book, corp tags, every member's customers and the group chats, compares them with
Siyu's rows and fixes the difference, recording each fix as the event it stands for (marked
``healed``) and counting it in a ``ReconciliationRun`` that the event-health page shows.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from siyu.accounts.models import Department, StaffMember, StaffStatus
from siyu.accounts.services import department_upsert, staff_upsert
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers import services as customers
from siyu.customers.models import (
    Customer,
    CustomerIdentity,
    IdentityKind,
    RelationStatus,
    StaffRelation,
)
from siyu.groupchats import services as groupchats
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.tags import services as tags
from siyu.tags.models import CustomerTag
from siyu.wecom.client.client import WeComClient
from siyu.wecom.models import ReconciliationRun

logger = logging.getLogger(__name__)
SOURCE = "wecom"
DETAIL_SAMPLE = 200  # how many healed items the report keeps verbatim

_STATUS = {
    1: StaffStatus.ACTIVE,
    2: StaffStatus.DISABLED,
    4: StaffStatus.INACTIVE,
    5: StaffStatus.LEFT,
}


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else timezone.now()


def _stamp(at: datetime | None) -> int:
    return int(at.timestamp()) if at else 0


class Report:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.details: list[dict[str, Any]] = []

    def heal(self, kind: str, **what: Any) -> None:
        self.counts[kind] += 1
        if len(self.details) < DETAIL_SAMPLE:
            self.details.append({"kind": kind, **what})


def sync_address_book(client: WeComClient, report: Report) -> None:
    departments = client.department_list()
    known = set(Department.objects.values_list("wecom_id", flat=True))
    for dept in sorted(departments, key=lambda d: (d.get("parentid") or 0, d["id"])):
        if dept["id"] not in known:
            report.heal("departments_added", id=dept["id"])
        department_upsert(
            wecom_id=dept["id"],
            name=dept.get("name", str(dept["id"])),
            parent_wecom_id=dept.get("parentid") or None,
            order=dept.get("order", 0),
        )
    seen_userids = set()
    existing = {m.userid: m for m in StaffMember.objects.all()}
    for row in client.user_ids():
        userid = row["userid"]
        seen_userids.add(userid)
        info = client.user_get(userid)
        status = _STATUS.get(int(info.get("status", 1)), StaffStatus.ACTIVE)
        member = existing.get(userid)
        if member is None:
            report.heal("staff_added", userid=userid)
        elif member.status != status:
            report.heal("staff_status_changed", userid=userid, status=status)
        staff_upsert(
            userid=userid,
            name=info.get("name") or userid,
            department_wecom_ids=list(info.get("department", [])),
            main_department_wecom_id=info.get("main_department"),
            position=info.get("position", ""),
            status=status,
        )
    for userid, member in existing.items():
        if userid not in seen_userids and member.status != StaffStatus.LEFT:
            member.status = StaffStatus.LEFT
            member.left_at = timezone.now()
            member.save(update_fields=["status", "left_at"])
            report.heal("staff_left", userid=userid)


def sync_tags(client: WeComClient, report: Report) -> None:
    counts = tags.tag_groups_upsert_from_wecom(client.corp_tag_list(), complete=True)
    for kind, n in counts.items():
        if n:
            report.counts[f"tags_{kind}"] += n


def sync_customers(client: WeComClient, report: Report) -> None:
    """Relations: WeCom's batch list against Siyu's, both ways.

    Diff-based: each WeCom page (≤100 contacts) is compared with Siyu's rows read in bulk, and
    only differences are written, so a nightly run over a large, mostly unchanged book costs a
    few queries per hundred customers.
    """
    follow_users = client.follow_user_list()
    members = {m.userid: m for m in StaffMember.objects.filter(userid__in=follow_users)}
    for userid in follow_users:
        if userid not in members:
            members[userid] = staff_upsert(userid=userid, name=userid)
    relations = {
        (r.staff.userid, r.external_userid): r
        for r in StaffRelation.objects.select_related("staff").filter(
            staff__userid__in=follow_users
        )
    }
    seen: set[tuple[str, str]] = set()
    for page in client.external_contact_pages(list(members)):
        _sync_page(page, members, relations, seen, report)
    for (userid, ext), relation in relations.items():
        if (userid, ext) in seen or relation.status not in (
            RelationStatus.ACTIVE,
            RelationStatus.HALF,
        ):
            continue
        with transaction.atomic():
            # Absent from the member's list: the member no longer has this customer.
            customers.relation_deleted(
                staff=relation.staff,
                external_userid=ext,
                at=timezone.now(),
                by="staff",
                source=SOURCE,
                delete_source="reconcile",
                idempotency_key=f"heal:del:{userid}:{ext}:{relation.pk}:{_stamp(relation.changed_at)}",
            )
        report.heal("relations_deleted", userid=userid, external_userid=ext)


def _sync_page(
    page: list[dict[str, Any]],
    members: dict[str, StaffMember],
    relations: dict[tuple[str, str], StaffRelation],
    seen: set[tuple[str, str]],
    report: Report,
) -> None:
    exts = {row.get("external_contact", {}).get("external_userid", "") for row in page}
    identities = CustomerIdentity.objects.filter(
        Q(kind=IdentityKind.EXTERNAL_USERID, value__in=exts)
    ).values_list("value", "customer_id")
    customer_of = dict(identities)
    known = Customer.objects.in_bulk(set(customer_of.values()))
    unionids = set(
        CustomerIdentity.objects.filter(
            customer_id__in=known, kind=IdentityKind.UNIONID
        ).values_list("customer_id", "value")
    )
    tags_now: dict[tuple[int, int | None], set[str]] = {}
    for customer_id, staff_id, wecom_id in CustomerTag.objects.filter(
        customer_id__in=known, tag__wecom_id__isnull=False
    ).values_list("customer_id", "staff_id", "tag__wecom_id"):
        tags_now.setdefault((customer_id, staff_id), set()).add(str(wecom_id))
    profile_updates: dict[int, Customer] = {}
    changed_fields: set[str] = set()
    for row in page:
        contact = row.get("external_contact", {})
        follow = row.get("follow_info", {})
        userid, ext = follow.get("userid", ""), contact.get("external_userid", "")
        if not userid or not ext or userid not in members:
            continue
        seen.add((userid, ext))
        staff = members[userid]
        relation = relations.get((userid, ext))
        added_at = _ts(follow.get("createtime"))
        customer = known.get(customer_of.get(ext, 0))
        unionid = contact.get("unionid", "")
        missing = relation is None or (
            relation.status != RelationStatus.ACTIVE
            and relation.changed_at is not None
            and relation.changed_at < added_at
        )
        if missing:
            with transaction.atomic():
                relation = customers.relation_added(
                    staff=staff,
                    external_userid=ext,
                    at=added_at,
                    source=SOURCE,
                    state=follow.get("state", ""),
                    add_way=int(follow.get("add_way", 0) or 0),
                    idempotency_key=f"heal:add:{userid}:{ext}:{int(added_at.timestamp())}",
                )
            report.heal("relations_added", userid=userid, external_userid=ext)
            if relation is not None:
                relations[(userid, ext)] = relation
        if customer is None:
            customer = customers.customer_ensure(
                external_userid=ext, unionid=unionid, profile=contact
            )
            known[customer.pk] = customer
        else:
            for field, value in _profile_changes(customer, contact).items():
                setattr(customer, field, value)
                changed_fields.add(field)
                profile_updates[customer.pk] = customer
            if unionid and (customer.pk, unionid) not in unionids:
                customers.identity_link(customer, IdentityKind.UNIONID, unionid)
        if relation is not None and _follow_differs(relation, follow):
            with transaction.atomic():
                customers.relation_refresh(
                    staff=staff,
                    external_userid=ext,
                    follow=follow,
                    source=SOURCE,
                    at=timezone.now(),
                )
        wanted = set(follow.get("tag_id", []))
        if wanted != tags_now.get((customer.pk, staff.pk), set()):
            with transaction.atomic():
                tags.customer_tags_set_from_wecom(
                    customer=customer, staff=staff, wecom_tag_ids=sorted(wanted), source=SOURCE
                )
    if profile_updates:
        # Profiles are facts WeCom owns (name, avatar…), not customer events: one bulk write.
        Customer.objects.bulk_update(
            list(profile_updates.values()), [*sorted(changed_fields), "updated_at"]
        )


def _profile_changes(customer: Customer, contact: dict[str, Any]) -> dict[str, Any]:
    return {
        field: contact[field]
        for field in customers.PROFILE_FIELDS
        if contact.get(field) not in (None, "") and getattr(customer, field) != contact[field]
    }


def _follow_differs(relation: StaffRelation, follow: dict[str, Any]) -> bool:
    return (
        follow.get("remark", relation.remark) != relation.remark
        or follow.get("description", relation.description) != relation.description
        or list(follow.get("remark_mobiles", relation.remark_mobiles)) != relation.remark_mobiles
    )


def sync_group_chats(client: WeComClient, report: Report) -> None:
    seen = set()
    for row in client.group_chat_ids():
        chat_id = row["chat_id"]
        seen.add(chat_id)
        detail = client.group_chat(chat_id)
        existing = GroupChat.objects.filter(chat_id=chat_id).first()
        if existing is None or existing.member_version != str(detail.get("member_version", "")):
            report.heal("group_chats_changed" if existing else "group_chats_added", chat_id=chat_id)
            with transaction.atomic():
                groupchats.group_chat_apply(
                    detail,
                    source=SOURCE,
                    at=timezone.now(),
                    event_key=f"heal:{chat_id}:{detail.get('member_version', '')}",
                )
    for chat in GroupChat.objects.filter(status=GroupChatStatus.ACTIVE).exclude(chat_id__in=seen):
        groupchats.group_chat_dismissed(chat_id=chat.chat_id, at=timezone.now())
        report.heal("group_chats_dismissed", chat_id=chat.chat_id)


def reconcile(
    tenant: Tenant,
    *,
    client: WeComClient | None = None,
    parts: tuple[str, ...] = ("address_book", "tags", "customers", "group_chats"),
) -> ReconciliationRun:
    """Run a full sync as a reconciliation and record what it healed."""
    steps = {
        "address_book": sync_address_book,
        "tags": sync_tags,
        "customers": sync_customers,
        "group_chats": sync_group_chats,
    }
    with tenant_context(tenant):
        run = ReconciliationRun.objects.create()
        report = Report()
        own = client is None
        api = client or WeComClient.for_tenant(tenant)
        try:
            for part in parts:
                steps[part](api, report)
        except Exception as exc:
            logger.exception("reconciliation of %s failed", tenant.slug)
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        else:
            run.status = "done"
        finally:
            if own:
                api.close()
        run.finished_at = timezone.now()
        run.healed = dict(report.counts)
        run.details = report.details
        run.save()
    return run
