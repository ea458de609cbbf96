"""The tag taxonomy and customer tags, kept the same in Siyu and in WeCom.

Two directions:
- WeCom → Siyu: callbacks and reconciliation hand WeCom's lists to ``tag_groups_upsert_from_wecom``
  and ``customer_tags_set_from_wecom``; WeCom is the truth for what it reports.
- Siyu → WeCom, taxonomy: the WeCom call comes first and the local write follows in one
  transaction. WeCom assigns the ids we must store and refuses duplicates and the 3000-tag cap
  itself, so asking first means a refusal changes nothing here; a crash between the call and the
  write is healed by the next reconciliation, which adopts what WeCom has.
- Siyu → WeCom, customer tags: the ``CustomerTag`` rows, their event and a ``TagMarkPush`` outbox
  row are written in the caller's transaction (which may be a rule running inside an event
  delivery, where no outside call may happen); mark_tag runs after the commit and is idempotent.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, access_customer, require
from siyu.audit.services import audit_record
from siyu.core.errors import Conflict, InvalidInput, NotFound, SiyuError
from siyu.core.events import get_event_type
from siyu.core.models import Event
from siyu.core.services import event_record, retry_delay
from siyu.core.tenancy import get_current_tenant, tenant_context
from siyu.customers.events import CUSTOMER_TAGS_CHANGED
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.tags.models import (
    CustomerTag,
    PushStatus,
    Tag,
    TagGroup,
    TagMarkPush,
    TagRule,
    TagSource,
)
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import QuotaExceeded, TransientError, WeComError

logger = logging.getLogger(__name__)

NAME_MAX = 30  # WeCom's limit for group and tag names
ORDER_MAX = 2**32 - 1  # WeCom's order is an unsigned 32-bit number
TAGS_PER_GROUP_CREATE = 100
PUSH_MAX_ATTEMPTS = 8
# WeCom's answer about a customer's tags may have been read before a mark Siyu just made
# landed (enrichment asks while the push is in flight): for this long after a push is done it
# still lies over WeCom's answer, as pending ones do.
PUSH_SETTLE = timedelta(seconds=60)

# The event log's ``source`` for each way a tag is applied by Siyu.
_EVENT_SOURCE: dict[str, str] = {
    TagSource.MANUAL: "console",
    TagSource.IMPORT: "import",
    TagSource.CHANNEL: "wecom",
    TagSource.RULE: "system",
}


class WeComUnavailable(SiyuError):
    code = "wecom_unavailable"
    status = 503


class WeComRefused(SiyuError):
    code = "wecom_refused"
    status = 502


# --- talking to WeCom ----------------------------------------------------------------------


@contextmanager
def _wecom() -> Iterator[WeComClient]:
    """A client for the tenant in context; WeCom's refusals become domain errors (4xx/5xx)."""
    try:
        with WeComClient.for_tenant(get_current_tenant()) as client:
            yield client
    except QuotaExceeded as exc:
        raise Conflict(
            _("企业微信最多允许 3000 个企业标签，已达上限"), code="tag_limit_reached"
        ) from exc
    except TransientError as exc:
        raise WeComUnavailable(_("企业微信暂时不可用，请稍后重试")) from exc
    except WeComError as exc:
        if exc.errcode == 40071:
            raise Conflict(_("企业微信中已有同名标签"), code="tag_name_taken") from exc
        if exc.errcode == 40058:
            raise InvalidInput(_("企业微信拒绝了该名称或顺序")) from exc
        raise WeComRefused(
            _("企业微信拒绝了这次修改（错误码 %(code)s）") % {"code": exc.errcode},
            details={"errcode": exc.errcode},
        ) from exc


def _clean_name(name: object, what: str) -> str:
    value = str(name or "").strip()
    if not value or len(value) > NAME_MAX:
        raise InvalidInput(_("%(what)s名称须为 1–%(max)s 个字符") % {"what": what, "max": NAME_MAX})
    return value


def _clean_order(order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= ORDER_MAX:
        raise InvalidInput(_("排序值须为 0 到 %(max)s 之间的整数") % {"max": ORDER_MAX})
    return order


def _group(group_id: int) -> TagGroup:
    group = TagGroup.objects.filter(pk=group_id).first()
    if group is None:
        raise NotFound(_("标签组不存在"))
    return group


def _tag(tag_id: int) -> Tag:
    tag = Tag.objects.select_related("group").filter(pk=tag_id).first()
    if tag is None:
        raise NotFound(_("标签不存在"))
    return tag


def _must_be_in_wecom(wecom_id: str | None) -> str:
    if not wecom_id:
        raise Conflict(_("该标签组尚未同步到企业微信，请先同步企业微信"), code="wecom_out_of_sync")
    return wecom_id


# --- taxonomy: Siyu → WeCom ----------------------------------------------------------------


def tag_group_create(
    *,
    actor: StaffMember,
    name: str,
    tags: list[str],
    order: int = 0,
    required: bool = False,
    mass_send: bool = False,
) -> TagGroup:
    """Create a group with its first tags (WeCom has no empty groups) in WeCom, then here."""
    require(actor, Action.TAGS_MANAGE)
    name = _clean_name(name, _("标签组"))
    order = _clean_order(order)
    names = [_clean_name(tag, _("标签")) for tag in tags]
    if not names or len(names) > TAGS_PER_GROUP_CREATE:
        raise InvalidInput(_("新标签组须包含 1–%(max)s 个标签") % {"max": TAGS_PER_GROUP_CREATE})
    if len(set(names)) != len(names):
        raise InvalidInput(_("同一标签组内的标签不能重名"))
    if TagGroup.objects.filter(name=name).exists():
        raise Conflict(_("已有同名标签组"), code="tag_name_taken")
    with _wecom() as client:
        created = client.add_corp_tag(
            {"group_name": name, "order": order, "tag": [{"name": n} for n in names]}
        )
        # The answer lists only the tags it created; the group's full state is one read away.
        full = client.corp_tag_list(group_ids=[created["group_id"]])
    with transaction.atomic():
        tag_groups_upsert_from_wecom(full, complete=False)
        group = TagGroup.objects.get(wecom_id=created["group_id"])
        group.required, group.mass_send = required, mass_send
        group.save(update_fields=["required", "mass_send"])
        audit_record(actor=actor, action="tags.group_create", target=group, details={"tags": names})
    return group


def tag_group_update(
    *,
    actor: StaffMember,
    group_id: int,
    name: str | None = None,
    order: int | None = None,
    required: bool | None = None,
    mass_send: bool | None = None,
) -> TagGroup:
    """Rename or reorder a group (in WeCom first) and set Siyu's quality flags."""
    require(actor, Action.TAGS_MANAGE)
    group = _group(group_id)
    name = _clean_name(name, _("标签组")) if name is not None else None
    order = _clean_order(order) if order is not None else None
    if name is not None and TagGroup.objects.filter(name=name).exclude(pk=group.pk).exists():
        raise Conflict(_("已有同名标签组"), code="tag_name_taken")
    if (name is not None and name != group.name) or (order is not None and order != group.order):
        with _wecom() as client:
            client.edit_corp_tag(id=_must_be_in_wecom(group.wecom_id), name=name, order=order)
    for field, value in {
        "name": name,
        "order": order,
        "required": required,
        "mass_send": mass_send,
    }.items():
        if value is not None:
            setattr(group, field, value)
    with transaction.atomic():
        group.save()
        audit_record(
            actor=actor,
            action="tags.group_update",
            target=group,
            details={"name": name, "order": order, "required": required, "mass_send": mass_send},
        )
    return group


def tag_group_delete(*, actor: StaffMember, group_id: int) -> None:
    """Delete a group with its tags, their assignments and the rules that apply them."""
    require(actor, Action.TAGS_MANAGE)
    group = _group(group_id)
    if group.wecom_id:
        _wecom_delete(group_ids=[group.wecom_id])
    with transaction.atomic():
        audit_record(actor=actor, action="tags.group_delete", target=group, details={})
        group.delete()


def tag_create(*, actor: StaffMember, group_id: int, name: str, order: int = 0) -> Tag:
    require(actor, Action.TAGS_MANAGE)
    group = _group(group_id)
    name = _clean_name(name, _("标签"))
    order = _clean_order(order)
    if Tag.objects.filter(group=group, name=name).exists():
        raise Conflict(_("该标签组内已有同名标签"), code="tag_name_taken")
    with _wecom() as client:
        created = client.add_corp_tag(
            {
                "group_id": _must_be_in_wecom(group.wecom_id),
                "tag": [{"name": name, "order": order}],
            }
        )
        full = client.corp_tag_list(group_ids=[str(group.wecom_id)])
    with transaction.atomic():
        tag_groups_upsert_from_wecom(full, complete=False)
    if not created.get("tag"):
        # WeCom silently skips a name the group already has there: we learnt it just now.
        raise Conflict(_("企业微信中该标签组已有同名标签"), code="tag_name_taken")
    tag = Tag.objects.get(wecom_id=created["tag"][0]["id"])
    audit_record(actor=actor, action="tags.tag_create", target=tag, details={"group": group.name})
    return tag


def tag_update(
    *, actor: StaffMember, tag_id: int, name: str | None = None, order: int | None = None
) -> Tag:
    require(actor, Action.TAGS_MANAGE)
    tag = _tag(tag_id)
    name = _clean_name(name, _("标签")) if name is not None else None
    order = _clean_order(order) if order is not None else None
    if name is not None and Tag.objects.filter(group=tag.group, name=name).exclude(pk=tag.pk):
        raise Conflict(_("该标签组内已有同名标签"), code="tag_name_taken")
    if (name is not None and name != tag.name) or (order is not None and order != tag.order):
        with _wecom() as client:
            client.edit_corp_tag(id=_must_be_in_wecom(tag.wecom_id), name=name, order=order)
        tag.name = name if name is not None else tag.name
        tag.order = order if order is not None else tag.order
        with transaction.atomic():
            tag.save(update_fields=["name", "order"])
            audit_record(
                actor=actor,
                action="tags.tag_update",
                target=tag,
                details={"name": name, "order": order},
            )
    return tag


def tag_delete(*, actor: StaffMember, tag_id: int) -> None:
    """Delete a tag; like WeCom, a group whose last tag goes goes with it."""
    require(actor, Action.TAGS_MANAGE)
    tag = _tag(tag_id)
    if tag.wecom_id:
        _wecom_delete(tag_ids=[tag.wecom_id])
    with transaction.atomic():
        group = tag.group
        audit_record(actor=actor, action="tags.tag_delete", target=tag, details={})
        tag.delete()
        if not group.tags.exists():
            group.delete()


def _wecom_delete(*, tag_ids: list[str] | None = None, group_ids: list[str] | None = None) -> None:
    try:
        with _wecom() as client:
            client.del_corp_tag(tag_ids=tag_ids, group_ids=group_ids)
    except WeComRefused as exc:
        # 40068: WeCom no longer has it (deleted there, callback still on its way) — the goal
        # is reached, the local delete converges.
        if exc.details != {"errcode": 40068}:
            raise


# --- taxonomy: WeCom → Siyu ----------------------------------------------------------------


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
            tag = (
                Tag.objects.filter(wecom_id=t["id"]).first()
                or Tag.objects.filter(group=group, name=t["name"], wecom_id__isnull=True).first()
            )
            if tag is None:
                Tag.objects.create(
                    group=group, wecom_id=t["id"], name=t["name"], order=t.get("order", 0)
                )
                counts["created"] += 1
            elif (tag.name, tag.order, tag.group_id, tag.wecom_id) != (
                t["name"],
                t.get("order", 0),
                group.pk,
                t["id"],
            ):
                tag.name, tag.order, tag.group, tag.wecom_id = (
                    t["name"],
                    t.get("order", 0),
                    group,
                    t["id"],
                )
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
    # WeCom deletes a group with its last tag, and sends no separate callback for it.
    TagGroup.objects.filter(wecom_id__isnull=False, tags__isnull=True).delete()
    return deleted + TagGroup.objects.filter(wecom_id__in=list(group_ids)).delete()[0]


# --- customer tags -------------------------------------------------------------------------


def customer_tags_set_from_wecom(
    *,
    customer: Customer,
    staff: StaffMember,
    wecom_tag_ids: list[str],
    source: str,
    idempotency_key: str | None = None,
) -> tuple[list[str], list[str]]:
    """Make the corp tags ``staff`` carries on ``customer`` exactly ``wecom_tag_ids``.
    Unknown ids (a tag created a moment ago) are skipped; tag sync brings them later.

    Siyu's own changes still waiting in the outbox, or sent to WeCom in the last
    ``PUSH_SETTLE``, lie over WeCom's answer: WeCom has not heard of them yet, or the answer was
    read before they landed, and a reconciliation must not undo a tag someone just applied."""
    _lock_relations(customer, staff)
    ids = set(wecom_tag_ids)
    recent = Q(status=PushStatus.PENDING) | Q(
        status=PushStatus.DONE, done_at__gte=timezone.now() - PUSH_SETTLE
    )
    for add, remove in (
        TagMarkPush.objects.filter(recent, customer=customer, staff=staff)
        .order_by("pk")
        .values_list("add", "remove")
    ):
        ids = (ids | set(add)) - set(remove)
    wanted = dict(Tag.objects.filter(wecom_id__in=ids).values_list("id", "name"))
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
                source=TagSource.WECOM,
            )
            for tid in added
        ],
        ignore_conflicts=True,
    )
    _record_change(
        customer,
        source=source,
        staff_userid=staff.userid,
        added={t: wanted[t] for t in added},
        removed={t: current[t] for t in removed},
        idempotency_key=idempotency_key,
    )
    return [wanted[t] for t in added], [current[t] for t in removed]


def _record_change(
    customer: Customer,
    *,
    source: str,
    staff_userid: str,
    added: dict[int, str],
    removed: dict[int, str],
    idempotency_key: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """One customer.tags_changed event: names for people, ids for machines (segments)."""
    event_record(
        type=CUSTOMER_TAGS_CHANGED,
        source=source,
        customer_id=customer.pk,
        occurred_at=timezone.now(),
        idempotency_key=idempotency_key,
        payload={
            "staff_userid": staff_userid,
            "added": sorted(added.values()),
            "removed": sorted(removed.values()),
            "added_ids": sorted(added),
            "removed_ids": sorted(removed),
            **(extra or {}),
        },
    )


def _carrier(customer: Customer, preferred: list[StaffMember | None]) -> StaffRelation | None:
    """The relation a tag applied in Siyu hangs on in WeCom: the first preferred member's active
    relation with the customer, otherwise the customer's most recently added active one. Locked
    (see ``_lock_relations``)."""
    relations = (
        StaffRelation.objects.filter(customer=customer, status=RelationStatus.ACTIVE)
        .select_related("staff")
        .select_for_update(of=("self",))
    )
    for member in preferred:
        if member is not None:
            mine = relations.filter(staff=member).first()
            if mine is not None:
                return mine
    return relations.order_by(F("added_at").desc(nulls_last=True), "-pk").first()


def _lock_relations(customer: Customer, staff: StaffMember | None = None) -> None:
    """Every writer of a relation's tags (Siyu's own, and WeCom's answers applied) reads the set
    and writes it back: they take the relation's row lock first, so one never decides on what
    another is still committing (an answer applied between a tag's insert and its push
    becoming visible would otherwise take the tag off)."""
    relations = StaffRelation.objects.filter(customer=customer)
    if staff is not None:
        relations = relations.filter(staff=staff)
    list(relations.select_for_update().order_by("pk").values_list("pk", flat=True))


def _tags_by_id(tag_ids: list[int]) -> dict[int, Tag]:
    wanted = set(tag_ids)
    found = Tag.objects.in_bulk(wanted)
    if len(found) != len(wanted):
        raise NotFound(_("标签不存在"))
    return found


def _push(relation: StaffRelation, *, add: list[Tag], remove: list[Tag]) -> None:
    add_ids = [t.wecom_id for t in add if t.wecom_id]
    remove_ids = [t.wecom_id for t in remove if t.wecom_id]
    if not add_ids and not remove_ids:
        return
    push = TagMarkPush.objects.create(
        customer_id=relation.customer_id,
        staff=relation.staff,
        external_userid=relation.external_userid,
        add=add_ids,
        remove=remove_ids,
    )
    transaction.on_commit(lambda: _enqueue_push(push.pk))


def _enqueue_push(push_id: int, countdown: float = 0) -> None:
    from siyu.tags.tasks import push_tag_marks

    try:
        push_tag_marks.apply_async((push_id,), countdown=countdown)
    except Exception:
        logger.exception("could not enqueue tag push %s; the sweep will", push_id)


def tags_apply(
    customer: Customer,
    tag_ids: list[int],
    *,
    source: str,
    staff: StaffMember | None = None,
    rule: TagRule | None = None,
    by: StaffMember | None = None,
) -> list[Tag]:
    """Put tags on a customer; returns the tags that were new. Call it in a transaction.

    ``staff``: the member the tag belongs with (the acting member, a channel code's member);
    the tag hangs on their relation with the customer, else on ``by``'s, else on the customer's
    most recently added active relation, and is marked in WeCom on that relation after the
    commit. A customer with no active relation keeps the tag in Siyu only. ``by`` is who did it
    (recorded as ``applied_by``). With a ``rule`` a customer who already carries the tag in any
    way is left alone: the rule wanted it on them, and it is.
    """
    if source not in _EVENT_SOURCE:
        raise InvalidInput(_("未知的打标签来源 %(source)s") % {"source": source})
    tags = _tags_by_id(tag_ids)
    relation = _carrier(customer, [staff, by])
    carrier = relation.staff if relation is not None else None
    have = CustomerTag.objects.filter(customer=customer, tag_id__in=tags)
    if rule is None:
        have = have.filter(staff=carrier)
    present = set(have.values_list("tag_id", flat=True))
    new: list[Tag] = []
    for tag in tags.values():
        if tag.pk in present:
            continue
        try:
            with transaction.atomic():
                CustomerTag.objects.create(
                    customer=customer,
                    tag=tag,
                    staff=carrier,
                    source=source,
                    applied_by=by,
                    rule=rule,
                )
        except IntegrityError:
            continue  # a concurrent writer put the same tag on the same relation
        new.append(tag)
    if not new:
        return []
    if relation is not None:
        _push(relation, add=new, remove=[])
    _record_change(
        customer,
        source=_EVENT_SOURCE[source],
        staff_userid=carrier.userid if carrier else "",
        added={t.pk: t.name for t in new},
        removed={},
        extra={
            "source": source,
            "rule_id": rule.pk if rule else None,
            "by_userid": by.userid if by else "",
        },
    )
    return new


def tags_remove(
    customer: Customer,
    tag_ids: list[int],
    *,
    source: str,
    staff: StaffMember | None = None,
    by: StaffMember | None = None,
) -> list[Tag]:
    """Take tags off a customer — off every relation that carries them, or only off ``staff``'s
    when given — and unmark them in WeCom after the commit. Returns the tags removed."""
    if source not in _EVENT_SOURCE:
        raise InvalidInput(_("未知的打标签来源 %(source)s") % {"source": source})
    tags = _tags_by_id(tag_ids)
    _lock_relations(customer, staff)
    rows = CustomerTag.objects.filter(customer=customer, tag_id__in=tags)
    if staff is not None:
        rows = rows.filter(staff=staff)
    carried = list(rows.values_list("tag_id", "staff_id"))
    if not carried:
        return []
    rows.delete()
    relations = StaffRelation.objects.filter(
        customer=customer,
        status=RelationStatus.ACTIVE,
        staff_id__in={staff_id for _, staff_id in carried if staff_id is not None},
    ).select_related("staff")
    for relation in relations:
        _push(
            relation,
            add=[],
            remove=[tags[tag_id] for tag_id, staff_id in carried if staff_id == relation.staff_id],
        )
    removed = {tag_id: tags[tag_id].name for tag_id, _ in carried}
    _record_change(
        customer,
        source=_EVENT_SOURCE[source],
        staff_userid=staff.userid if staff else "",
        added={},
        removed=removed,
        extra={"source": source, "rule_id": None, "by_userid": by.userid if by else ""},
    )
    return [tags[tag_id] for tag_id in removed]


def customer_tags_change(
    *, actor: StaffMember, customer_id: int, add: list[int], remove: list[int]
) -> Customer:
    """Tagging by hand (console, API): on customers in the actor's data scope only."""
    customer = access_customer(actor, customer_id, Action.CUSTOMERS_EDIT)
    if set(add) & set(remove):
        raise InvalidInput(_("同一个标签不能同时添加和移除"))
    with transaction.atomic():
        if remove:
            tags_remove(customer, remove, source=TagSource.MANUAL, by=actor)
        if add:
            tags_apply(customer, add, source=TagSource.MANUAL, staff=actor, by=actor)
    return customer


def tag_mark_push_send(*, push_id: int) -> str:
    """Mark one pushed change in WeCom; returns what happened. Idempotent: adding a tag a
    relation has, or removing one it lacks, changes nothing in WeCom."""
    push = TagMarkPush.unscoped.select_related("tenant", "staff").filter(pk=push_id).first()
    if push is None or push.status != PushStatus.PENDING:
        return "skipped"
    with tenant_context(push.tenant):
        try:
            with WeComClient.for_tenant(push.tenant) as client:
                client.mark_tag(
                    userid=push.staff.userid,
                    external_userid=push.external_userid,
                    add=push.add,
                    remove=push.remove,
                )
        except TransientError as exc:
            attempts = push.attempts + 1
            dead = attempts >= PUSH_MAX_ATTEMPTS
            TagMarkPush.objects.filter(pk=push.pk, status=PushStatus.PENDING).update(
                attempts=attempts,
                last_error=str(exc)[:4000],
                status=PushStatus.DEAD if dead else PushStatus.PENDING,
            )
            if dead:
                return "dead"
            _enqueue_push(push.pk, countdown=retry_delay(attempts).total_seconds())
            return "retry"
        except WeComError as exc:
            # Permanent (the relation ended, the tag was deleted in WeCom): retrying cannot help;
            # the next callback or reconciliation brings WeCom's view back.
            TagMarkPush.objects.filter(pk=push.pk, status=PushStatus.PENDING).update(
                attempts=push.attempts + 1, last_error=str(exc)[:4000], status=PushStatus.DEAD
            )
            return "dead"
        TagMarkPush.objects.filter(pk=push.pk, status=PushStatus.PENDING).update(
            attempts=push.attempts + 1, status=PushStatus.DONE, done_at=timezone.now()
        )
    return "done"


def tag_mark_pushes_sweep(*, grace_seconds: int = 300, batch: int = 1000) -> int:
    """Re-enqueue pushes whose job was lost (broker down, worker killed)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    ids = list(
        TagMarkPush.unscoped.filter(status=PushStatus.PENDING, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:batch]
    )
    for push_id in ids:
        _enqueue_push(push_id)
    return len(ids)


# --- auto-tag rules ------------------------------------------------------------------------

RULE_NAME_MAX = 64
THRESHOLD_MAX = 1000
WINDOW_DAYS_MAX = 365
CONDITIONS_MAX = 5
_CONDITION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _clean_conditions(conditions: object) -> dict[str, str | int | bool]:
    if conditions is None:
        return {}
    if not isinstance(conditions, dict) or len(conditions) > CONDITIONS_MAX:
        raise InvalidInput(_("事件条件须为最多 %(max)s 个“字段=值”") % {"max": CONDITIONS_MAX})
    clean: dict[str, str | int | bool] = {}
    for key, value in conditions.items():
        if not isinstance(key, str) or not _CONDITION_KEY.match(key):
            raise InvalidInput(_("条件字段名无效：%(key)s") % {"key": key})
        if isinstance(value, str) and len(value) > 200:
            raise InvalidInput(_("条件值最多 200 个字符"))
        if not isinstance(value, str | int | bool):
            raise InvalidInput(_("条件值须为文本、整数或布尔值：%(key)s") % {"key": key})
        clean[key] = value
    return clean


def _clean_rule(fields: dict[str, Any], *, rule: TagRule | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    if "name" in fields:
        name = str(fields["name"] or "").strip()
        if not name or len(name) > RULE_NAME_MAX:
            raise InvalidInput(_("规则名称须为 1–%(max)s 个字符") % {"max": RULE_NAME_MAX})
        others = TagRule.objects.filter(name=name)
        if rule is not None:
            others = others.exclude(pk=rule.pk)
        if others.exists():
            raise Conflict(_("已有同名规则"), code="rule_name_taken")
        clean["name"] = name
    if "event_type" in fields:
        try:
            clean["event_type"] = get_event_type(str(fields["event_type"])).name
        except ValueError:
            raise InvalidInput(
                _("未知的事件类型：%(type)s") % {"type": fields["event_type"]}
            ) from None
    if "threshold" in fields:
        threshold = fields["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise InvalidInput(_("次数须为整数"))
        if not 1 <= threshold <= THRESHOLD_MAX:
            raise InvalidInput(_("次数须在 1 到 %(max)s 之间") % {"max": THRESHOLD_MAX})
        clean["threshold"] = threshold
    if "window_days" in fields:
        days = fields["window_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= WINDOW_DAYS_MAX:
            raise InvalidInput(_("天数须在 1 到 %(max)s 之间") % {"max": WINDOW_DAYS_MAX})
        clean["window_days"] = days
    if "conditions" in fields:
        clean["conditions"] = _clean_conditions(fields["conditions"])
    if "tag_id" in fields:
        # Tenant-scoped: another company's tag is as unknown as a missing one.
        clean["tag"] = _tag(int(fields["tag_id"]))
    if "enabled" in fields:
        clean["enabled"] = bool(fields["enabled"])
    return clean


def tag_rule_create(
    *,
    actor: StaffMember,
    name: str,
    event_type: str,
    tag_id: int,
    threshold: int = 1,
    window_days: int = 7,
    conditions: dict[str, Any] | None = None,
    enabled: bool = True,
) -> TagRule:
    require(actor, Action.TAGS_MANAGE)
    clean = _clean_rule(
        {
            "name": name,
            "event_type": event_type,
            "tag_id": tag_id,
            "threshold": threshold,
            "window_days": window_days,
            "conditions": conditions,
            "enabled": enabled,
        },
        rule=None,
    )
    with transaction.atomic():
        rule = TagRule.objects.create(created_by=actor, **clean)
        audit_record(actor=actor, action="tags.rule_create", target=rule, details={"name": name})
    return rule


def tag_rule_update(*, actor: StaffMember, rule_id: int, **changes: Any) -> TagRule:
    require(actor, Action.TAGS_MANAGE)
    allowed = {"name", "event_type", "tag_id", "threshold", "window_days", "conditions", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(_("未知字段：%(f)s") % {"f": ", ".join(sorted(unknown))})
    rule = TagRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(_("规则不存在"))
    clean = _clean_rule(changes, rule=rule)
    for field, value in clean.items():
        setattr(rule, field, value)
    with transaction.atomic():
        rule.save()
        audit_record(
            actor=actor, action="tags.rule_update", target=rule, details={"changed": sorted(clean)}
        )
    return rule


def tag_rule_delete(*, actor: StaffMember, rule_id: int) -> None:
    require(actor, Action.TAGS_MANAGE)
    rule = TagRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(_("规则不存在"))
    with transaction.atomic():
        audit_record(actor=actor, action="tags.rule_delete", target=rule, details={})
        rule.delete()


def _matches(conditions: dict[str, Any], payload: dict[str, Any]) -> bool:
    return all(
        key in payload and payload[key] == value and type(payload[key]) is type(value)
        for key, value in conditions.items()
    )


def tag_rules_evaluate(*, event: Event) -> list[TagRule]:
    """Apply every enabled rule for ``event``'s type whose count is reached; returns the rules
    that tagged. Runs inside the event's delivery transaction, so it happens once per event."""
    if event.customer_id is None:
        return []
    customer = Customer.objects.filter(pk=event.customer_id).first()
    if customer is None:
        return []
    fired = []
    rules = TagRule.objects.filter(enabled=True, event_type=event.type).select_related("tag")
    for rule in rules:
        if not _matches(rule.conditions, event.payload):
            continue
        if CustomerTag.objects.filter(customer=customer, tag=rule.tag).exists():
            continue
        matching = Event.objects.filter(
            customer_id=customer.pk,
            type=rule.event_type,
            occurred_at__gt=event.occurred_at - timedelta(days=rule.window_days),
            occurred_at__lte=event.occurred_at,
        )
        for index, (key, value) in enumerate(rule.conditions.items()):
            # An annotation, not ``payload__<key>``: a key named like a lookup ("contains")
            # must still mean the key.
            matching = matching.annotate(**{f"_c{index}": KeyTransform(key, "payload")}).filter(
                **{f"_c{index}": value}
            )
        if matching.values("pk")[: rule.threshold].count() < rule.threshold:
            continue
        if tags_apply(customer, [rule.tag_id], source=TagSource.RULE, rule=rule):
            fired.append(rule)
    return fired
