"""Writes for mass sends (群发): plan, fan out exactly once, follow WeCom's results, cancel.

WeCom's physics. The server cannot message a customer: ``add_msg_template`` creates a *task*
that the sending member confirms in their WeCom client; each customer receives only so many
company mass sends per period (``governor.mass_send_window``; over-quota customers are skipped
silently, send_result status 3); reminders are capped (3 per message per 24 h). So a send is
planned first — who receives it, who does not and why — and the operator sees that before
anything is created.

Planning (``plan``) is set-based: one query for the audience's relations, one for the
customers already at their receive cap; each customer goes to the member who added them last
(WeCom pushes to one member only). The result is written as one ``Recipient`` per customer
(receiving or excluded with a reason) and one ``Batch`` per (mass send, sender, ≤ 10 000
customers / ≤ 2 000 chats), in the same transaction that moves the send to ``sending``.

Exactly once. ``add_msg_template`` has no idempotency key, and a call can be applied by WeCom
while its answer is lost (timeout, crash of the worker before the msgid is stored). Each
``Batch`` is an outbox row with a random ``key``, and that key travels inside the message as
invisible characters at the end of the text (``marker``), so WeCom's own list of mass sends
says whether a call was applied. The state machine:

    pending ──claim──▶ calling ──answer──▶ created (msgid)   | failed (permanent errcode)
    calling ──transient error / crash, after RECONCILE_AFTER──▶ reconcile:
        key found in get_groupmsg_list_v2 → created (WeCom's msgid adopted, nothing sent)
        key not found                    → pending (sent again)
    pending / calling ──cancel──▶ cancelled;  created ──cancel──▶ cancel_groupmsg_send

The claim is a conditional UPDATE (pending → calling), so two workers never call for one batch;
the client never retries the call itself (``retry=False``); reconciliation only touches a batch
whose call has certainly ended (``SIYU_MASS_SEND_RECONCILE_SECONDS`` is well above the client
timeout). Recording the answer is conditional on the claim (status and attempt), so a late
answer cannot overwrite a newer state. Moments (``add_moment_task``) have no listing we can
match against, so an uncertain moment call is failed for the operator to check, never repeated:
at most once.

Results. ``mass_send_sync`` reads ``get_groupmsg_task`` (did the member send?) and
``get_groupmsg_send_result`` (per customer: delivered / not a friend / over quota) and records
``masssend.sent`` per confirmed batch and ``masssend.delivered`` per customer, each once.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require, restrict_customers, visible_staff_ids
from siyu.audit.services import audit_record
from siyu.core.errors import Conflict, InvalidInput
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.models import Customer, CustomerIdentity, RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.masssend import events
from siyu.masssend.models import (
    AudienceKind,
    Batch,
    BatchStatus,
    ExcludeReason,
    MassSend,
    MassSendKind,
    MassSendStatus,
    Recipient,
    RecipientStatus,
)
from siyu.segments.selectors import saved_segment_get, segment_customers
from siyu.tags.models import CustomerTag, Tag
from siyu.wecom.client import governor
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import RateLimited, TokenError, TransientError, WeComError

logger = logging.getLogger(__name__)

SOURCE = "system"
CUSTOMER_BATCH = 10_000  # add_msg_template: external_userid ≤ 10 000
CHAT_BATCH = 2_000  # add_msg_template: chat_id_list ≤ 2 000
MOMENT_SENDERS = 100_000  # add_moment_task: sender_list ≤ 100 000
TEXT_MAX_BYTES = 3_800  # WeCom's 4 000 less room for the marker
MOMENT_TEXT_MAX = 1_900  # WeCom's 2 000 characters less the marker
NAME_MAX = 100
UPLOAD_MAX_ROWS = 100_000
ATTACHMENTS_MAX = 9
SCHEDULE_SLACK = timedelta(minutes=1)  # "now" typed into a form is not "in the past"
TRACK_FOR = timedelta(days=7)  # members rarely confirm a task later than this
# Results are read at most this often per send (each read costs a call per unconfirmed task).
SYNC_EVERY = timedelta(minutes=5)
_IN = 900  # ids per IN (…) clause: below every database's parameter limit

# The idempotency key, hidden in the text: a start sign, then two of four zero-width
# characters per hex digit (shown as nothing in WeChat and WeCom).
_MARK = "\u2063"
_ZW = ("\u200b", "\u200c", "\u200d", "\u2060")
_ZW_VALUE = {ch: n for n, ch in enumerate(_ZW)}


def marker(key: str) -> str:
    return _MARK + "".join(_ZW[int(c, 16) // 4] + _ZW[int(c, 16) % 4] for c in key)


def marker_key(text: str) -> str | None:
    """The batch key hidden at the end of ``text``, if any."""
    start = text.rfind(_MARK)
    if start < 0:
        return None
    tail = text[start + 1 :]
    if len(tail) % 2 or any(ch not in _ZW_VALUE for ch in tail):
        return None
    return "".join(
        f"{_ZW_VALUE[tail[i]] * 4 + _ZW_VALUE[tail[i + 1]]:x}" for i in range(0, len(tail), 2)
    )


def _new_key() -> str:
    return uuid.uuid4().hex[:16]


def _chunks[T](items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _client() -> WeComClient:
    return WeComClient.for_tenant(get_current_tenant())


def _reconcile_after() -> timedelta:
    return timedelta(seconds=settings.SIYU_MASS_SEND_RECONCILE_SECONDS)


# --- audience ------------------------------------------------------------------------------


def _int_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InvalidInput(f"{what} must be a list of ids")
    return list(dict.fromkeys(value))


def clean_audience(*, kind: str, audience_kind: str, audience: dict[str, Any]) -> dict[str, Any]:
    """The audience as stored: only the keys its kind uses, each checked for shape."""
    if kind not in MassSendKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(MassSendKind.values)}")
    if audience_kind not in AudienceKind.values:
        raise InvalidInput(f"audience_kind must be one of {', '.join(AudienceKind.values)}")
    if not isinstance(audience, dict):
        raise InvalidInput("audience must be an object")
    cleaned: dict[str, Any] = {}
    if audience_kind == AudienceKind.SEGMENT:
        segment_id = audience.get("segment_id")
        if not isinstance(segment_id, int) or isinstance(segment_id, bool):
            raise InvalidInput("choose a saved segment (segment_id)")
        cleaned["segment_id"] = segment_id
    elif audience_kind == AudienceKind.EXPRESSION:
        expression = str(audience.get("expression") or "").strip()
        if not expression:
            raise InvalidInput("the filter expression is empty")
        cleaned["expression"] = expression
    elif audience_kind == AudienceKind.TAGS:
        cleaned["tag_ids"] = _int_list(audience.get("tag_ids"), "tag_ids")
        if not cleaned["tag_ids"]:
            raise InvalidInput("choose at least one tag")
    else:
        cleaned["customer_ids"] = _int_list(audience.get("customer_ids"), "customer_ids")
        if not cleaned["customer_ids"]:
            raise InvalidInput("the uploaded list holds no customers")
        if len(cleaned["customer_ids"]) > UPLOAD_MAX_ROWS:
            raise InvalidInput(f"upload at most {UPLOAD_MAX_ROWS} customers")
    if kind == MassSendKind.GROUPS and "staff_ids" in audience:
        cleaned["staff_ids"] = _int_list(audience["staff_ids"], "staff_ids")
    return cleaned


def audience_customers(
    *, actor: StaffMember, audience_kind: str, audience: dict[str, Any]
) -> QuerySet[Customer]:
    """The customers an audience names, within ``actor``'s data scope. Raises
    ``SegmentError``/``NotFound`` for a bad expression, segment or tag."""
    if audience_kind == AudienceKind.SEGMENT:
        segment = saved_segment_get(actor=actor, segment_id=audience["segment_id"])
        qs = segment_customers(segment.expression)
    elif audience_kind == AudienceKind.EXPRESSION:
        qs = segment_customers(audience["expression"])
    elif audience_kind == AudienceKind.TAGS:
        tag_ids = audience["tag_ids"]
        known = set(Tag.objects.filter(pk__in=tag_ids).values_list("pk", flat=True))
        unknown = [t for t in tag_ids if t not in known]
        if unknown:
            raise InvalidInput("unknown tags", details={"tag_ids": unknown})
        tagged = CustomerTag.objects.filter(tag_id__in=tag_ids).values("customer_id")
        qs = Customer.objects.filter(pk__in=tagged, merged_into__isnull=True)
    else:
        qs = Customer.objects.filter(pk__in=audience["customer_ids"], merged_into__isnull=True)
    return restrict_customers(qs, actor, Action.MASS_SEND_MANAGE)


@dataclass
class UploadResult:
    customer_ids: list[int]
    errors: list[dict[str, Any]]  # {row, value, message}


def audience_upload_parse(*, data: bytes) -> UploadResult:
    """A CSV of customer ids or external_userids, one per row (first column; a header row
    is allowed). Each row that names no customer of the tenant is reported with its row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the file must be UTF-8 CSV") from None
    values: list[tuple[int, str]] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        value = (row[0] if row else "").strip()
        if not value or (n == 1 and value.lower() in {"customer_id", "external_userid", "id"}):
            continue
        values.append((n, value))
    if len(values) > UPLOAD_MAX_ROWS:
        raise InvalidInput(f"upload at most {UPLOAD_MAX_ROWS} rows")
    if not values:
        raise InvalidInput("the file holds no rows")
    numbers = [int(v) for _, v in values if v.isdigit()]
    words = [v for _, v in values if not v.isdigit()]
    by_id: set[int] = set()
    for chunk in _chunks(numbers, _IN):
        by_id |= set(
            Customer.objects.filter(pk__in=chunk, merged_into__isnull=True).values_list(
                "pk", flat=True
            )
        )
    by_ext: dict[str, int] = {}
    for names in _chunks(words, _IN):
        by_ext.update(
            StaffRelation.objects.filter(external_userid__in=names).values_list(
                "external_userid", "customer_id"
            )
        )
        by_ext.update(
            CustomerIdentity.objects.filter(value__in=names).values_list("value", "customer_id")
        )
    ids: list[int] = []
    errors: list[dict[str, Any]] = []
    for n, value in values:
        found = int(value) if value.isdigit() and int(value) in by_id else by_ext.get(value)
        if found is None:
            errors.append({"row": n, "value": value[:64], "message": "no such customer"})
        else:
            ids.append(found)
    return UploadResult(customer_ids=list(dict.fromkeys(ids)), errors=errors)


# --- planning ------------------------------------------------------------------------------


@dataclass
class Plan:
    # (customer_id or None, staff_id, target) per receiving customer or chat
    receiving: list[tuple[int | None, int, str]] = field(default_factory=list)
    # (customer_id, target, reason) per customer who will not receive it
    excluded: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.receiving) + len(self.excluded)


def _senders(actor: StaffMember) -> QuerySet[StaffMember]:
    members = StaffMember.objects.filter(status=StaffStatus.ACTIVE, customer_contact_enabled=True)
    scope = visible_staff_ids(actor)
    return members if scope is None else members.filter(pk__in=scope)


def plan(
    *,
    actor: StaffMember,
    kind: str,
    audience_kind: str,
    audience: dict[str, Any],
    at: datetime | None = None,
) -> Plan:
    """Who would receive the send at ``at`` (default now), and who would not and why."""
    at = at or timezone.now()
    if kind == MassSendKind.GROUPS:
        return _plan_groups(actor, audience)
    customers = audience_customers(actor=actor, audience_kind=audience_kind, audience=audience)
    matched = customers.values("pk")
    senders = _senders(actor).values("pk")
    best: dict[int, tuple[datetime | None, int, int, str]] = {}
    known: dict[int, str] = {}
    rows = (
        StaffRelation.objects.filter(customer_id__in=matched)
        .values_list("customer_id", "staff_id", "external_userid", "status", "added_at")
        .iterator(chunk_size=10_000)
    )
    sendable_staff = set(senders.values_list("pk", flat=True))
    for customer_id, staff_id, ext, status, added_at in rows:
        known.setdefault(customer_id, ext)
        if status != RelationStatus.ACTIVE or staff_id not in sendable_staff:
            continue
        current = best.get(customer_id)
        rank = (added_at, staff_id)
        if current is None or (rank[0] or at, rank[1]) > (current[0] or at, current[1]):
            best[customer_id] = (added_at, staff_id, customer_id, ext)
    start, cap = governor.mass_send_window(settings.SIYU_MASS_SEND_RULE, at)
    capped = set(
        Recipient.objects.filter(
            customer_id__in=matched,
            status=RecipientStatus.DELIVERED,
            delivered_at__gte=start,
            mass_send__kind=MassSendKind.CUSTOMERS,
        )
        .values("customer_id")
        .annotate(n=Count("pk"))
        .filter(n__gte=cap)
        .values_list("customer_id", flat=True)
    )
    result = Plan()
    for customer_id in (
        customers.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=10_000)
    ):
        chosen = best.get(customer_id)
        if chosen is None:
            reason = ExcludeReason.DELETED if customer_id in known else ExcludeReason.NO_RELATION
            result.excluded.append((customer_id, known.get(customer_id, ""), reason))
        elif customer_id in capped and kind == MassSendKind.CUSTOMERS:
            result.excluded.append((customer_id, chosen[3], ExcludeReason.DAILY_CAP))
        else:
            result.receiving.append((customer_id, chosen[1], chosen[3]))
    return result


def _plan_groups(actor: StaffMember, audience: dict[str, Any]) -> Plan:
    chats = GroupChat.objects.filter(status=GroupChatStatus.ACTIVE, owner__in=_senders(actor))
    if audience.get("staff_ids"):
        chats = chats.filter(owner_id__in=audience["staff_ids"])
    result = Plan()
    for chat_id, owner_id in chats.order_by("pk").values_list("chat_id", "owner_id"):
        result.receiving.append((None, owner_id, chat_id))
    return result


@dataclass
class StaffShare:
    staff_id: int
    name: str
    recipients: int
    batches: int


@dataclass
class Preview:
    kind: str
    matched: int
    receiving: int
    excluded: dict[str, int]
    staff: list[StaffShare]
    batches: int
    cap: int
    cap_period_start: datetime
    notes: list[str]


def _batch_size(kind: str) -> int:
    if kind == MassSendKind.GROUPS:
        return CHAT_BATCH
    return MOMENT_SENDERS if kind == MassSendKind.MOMENTS else CUSTOMER_BATCH


def preview_of(*, kind: str, planned: Plan, at: datetime | None = None) -> Preview:
    at = at or timezone.now()
    per_staff: dict[int, int] = {}
    for _, staff_id, _ in planned.receiving:
        per_staff[staff_id] = per_staff.get(staff_id, 0) + 1
    names = dict(StaffMember.objects.filter(pk__in=list(per_staff)).values_list("pk", "name"))
    size = _batch_size(kind)
    shares = [
        StaffShare(s, names.get(s, ""), n, 1 if kind == MassSendKind.MOMENTS else -(-n // size))
        for s, n in sorted(per_staff.items(), key=lambda item: -item[1])
    ]
    excluded: dict[str, int] = {}
    for _, _, reason in planned.excluded:
        excluded[reason] = excluded.get(reason, 0) + 1
    start, cap = governor.mass_send_window(settings.SIYU_MASS_SEND_RULE, at)
    batches = (
        -(-len(per_staff) // MOMENT_SENDERS)
        if kind == MassSendKind.MOMENTS
        else sum(s.batches for s in shares)
    )
    notes = [
        "WeCom does not send by itself: each staff member confirms the task in their WeCom "
        "client; reminders are limited to 3 per message per 24 hours.",
    ]
    if kind == MassSendKind.CUSTOMERS:
        notes.append(
            f"Each customer receives at most {cap} company mass sends per period (since "
            f"{timezone.localtime(start):%Y-%m-%d}); WeCom silently skips those over it."
        )
    if kind == MassSendKind.MOMENTS:
        notes.append(
            "Moments are shown to all customers of the posting staff (or those with the chosen "
            "tags); WeCom allows 10 moment tasks per minute."
        )
    return Preview(
        kind=kind,
        matched=planned.matched,
        receiving=len(planned.receiving),
        excluded=excluded,
        staff=shares,
        batches=batches,
        cap=cap,
        cap_period_start=start,
        notes=notes,
    )


def mass_send_preview(
    *,
    actor: StaffMember,
    kind: str,
    audience_kind: str,
    audience: dict[str, Any],
    at: datetime | None = None,
) -> Preview:
    require(actor, Action.MASS_SEND_MANAGE)
    audience = clean_audience(kind=kind, audience_kind=audience_kind, audience=audience)
    return preview_of(
        kind=kind,
        planned=plan(actor=actor, kind=kind, audience_kind=audience_kind, audience=audience, at=at),
        at=at,
    )


# --- creating ------------------------------------------------------------------------------


def _clean_attachments(kind: str, attachments: Any) -> list[dict[str, Any]]:
    if attachments in (None, ""):
        return []
    if not isinstance(attachments, list) or len(attachments) > ATTACHMENTS_MAX:
        raise InvalidInput(f"attachments must be a list of at most {ATTACHMENTS_MAX}")
    allowed = (
        {"image", "link"} if kind == MassSendKind.MOMENTS else {"image", "link", "miniprogram"}
    )
    cleaned = []
    for n, item in enumerate(attachments, start=1):
        msgtype = item.get("msgtype") if isinstance(item, dict) else None
        payload = item.get(msgtype) if isinstance(item, dict) and msgtype else None
        if msgtype not in allowed or not isinstance(payload, dict):
            raise InvalidInput(
                f"attachment {n}: msgtype must be one of {', '.join(sorted(allowed))}"
            )
        if msgtype == "image":
            if not (payload.get("media_id") or payload.get("pic_url")):
                raise InvalidInput(f"attachment {n}: an image needs media_id or pic_url")
            body = {k: str(payload[k]) for k in ("media_id", "pic_url") if payload.get(k)}
        elif msgtype == "link":
            title, url = str(payload.get("title") or ""), str(payload.get("url") or "")
            if not title or len(title.encode()) > 128:
                raise InvalidInput(f"attachment {n}: a link needs a title of at most 128 bytes")
            if not url.startswith(("https://", "http://")):
                raise InvalidInput(f"attachment {n}: a link needs an http(s) url")
            body = {"title": title, "url": url}
            for key, limit in (("desc", 512), ("picurl", 2048)):
                if payload.get(key):
                    body[key] = str(payload[key])[:limit]
        else:
            body = {
                k: str(payload.get(k) or "") for k in ("title", "pic_media_id", "appid", "page")
            }
            if not all(body.values()) or len(body["title"].encode()) > 64:
                raise InvalidInput(
                    f"attachment {n}: a mini program needs title (≤64 bytes), pic_media_id, "
                    "appid and page"
                )
        cleaned.append({"msgtype": msgtype, msgtype: body})
    if (
        kind == MassSendKind.MOMENTS
        and any(a["msgtype"] == "link" for a in cleaned)
        and len(cleaned) > 1
    ):
        raise InvalidInput("a moment carries up to 9 images or a single link")
    return cleaned


def _content_item(content_item_id: int | None) -> Any:
    if content_item_id is None:
        return None
    if not apps.is_installed("siyu.content"):
        raise InvalidInput("the content library is not available")
    from siyu.content.models import ContentItem

    item = ContentItem.objects.filter(pk=content_item_id).first()
    if item is None:
        raise InvalidInput("content item not found")
    return item


def mass_send_create(
    *,
    actor: StaffMember,
    kind: str,
    name: str,
    audience_kind: str,
    audience: dict[str, Any],
    text: str,
    attachments: Any = None,
    content_item_id: int | None = None,
    scheduled_at: datetime | None = None,
) -> MassSend:
    """Create a mass send, immediate (``scheduled_at=None``) or scheduled. Refused — and nothing
    stored — when nobody would receive it, the schedule is in the past, or the message is not
    one WeCom accepts."""
    require(actor, Action.MASS_SEND_MANAGE)
    name, text = name.strip(), text.strip()
    if not name or len(name) > NAME_MAX:
        raise InvalidInput(f"a name of 1 to {NAME_MAX} characters is required")
    audience = clean_audience(kind=kind, audience_kind=audience_kind, audience=audience)
    if not text:
        # The batch key travels in the text (see the module docstring).
        raise InvalidInput("the message text is required")
    if kind == MassSendKind.MOMENTS and len(text) > MOMENT_TEXT_MAX:
        raise InvalidInput(f"a moment's text may hold at most {MOMENT_TEXT_MAX} characters")
    if len(text.encode()) > TEXT_MAX_BYTES:
        raise InvalidInput(f"the text may hold at most {TEXT_MAX_BYTES} bytes")
    cleaned = _clean_attachments(kind, attachments)
    _content_item(content_item_id)
    now = timezone.now()
    if scheduled_at is not None:
        if timezone.is_naive(scheduled_at):
            raise InvalidInput("the schedule needs a time zone")
        if scheduled_at < now - SCHEDULE_SLACK:
            raise InvalidInput("the schedule is in the past")
    preview = preview_of(
        kind=kind,
        planned=plan(actor=actor, kind=kind, audience_kind=audience_kind, audience=audience),
    )
    if preview.receiving == 0:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(preview.excluded.items()))
        raise InvalidInput(
            "nobody would receive this mass send"
            + (
                f" ({preview.matched} matched; {why})"
                if preview.matched
                else ": the audience matches nobody"
            ),
            details={"matched": preview.matched, "excluded": preview.excluded},
        )
    with transaction.atomic():
        send = MassSend.objects.create(
            kind=kind,
            name=name,
            audience_kind=audience_kind,
            audience=audience,
            text=text,
            attachments=cleaned,
            content_item_id=content_item_id,
            scheduled_at=scheduled_at,
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="masssend.create",
            target=send,
            details={"kind": kind, "audience_kind": audience_kind, "receiving": preview.receiving},
        )
        if scheduled_at is None or scheduled_at <= now:
            _queue_dispatch(send)
    return send


def _queue_dispatch(send: MassSend) -> None:
    from siyu.masssend.tasks import dispatch

    tenant_id, send_id = send.tenant_id, send.pk
    transaction.on_commit(lambda: dispatch.delay(tenant_id, send_id))


# --- dispatching ---------------------------------------------------------------------------


def mass_send_dispatch(*, mass_send_id: int, now: datetime | None = None) -> list[int]:
    """Plan a due send and write its recipients and batches (the outbox) in one transaction;
    returns the batch ids to send. A crash before the commit leaves the send scheduled, so the
    sweep plans it again; a send planned already returns its pending batches."""
    now = now or timezone.now()
    send = MassSend.objects.select_related("created_by").get(pk=mass_send_id)
    if send.status == MassSendStatus.SENDING:
        return list(send.batches.filter(status=BatchStatus.PENDING).values_list("pk", flat=True))
    if send.status != MassSendStatus.SCHEDULED or (send.scheduled_at and send.scheduled_at > now):
        return []
    actor = send.created_by
    if actor is None or actor.status != StaffStatus.ACTIVE:
        _fail_send(send, "the member who created it is no longer active")
        return []
    try:
        planned = plan(
            actor=actor,
            kind=send.kind,
            audience_kind=send.audience_kind,
            audience=send.audience,
            at=now,
        )
    except InvalidInput as exc:  # the segment or a tag was deleted meanwhile
        _fail_send(send, exc.message)
        return []
    if not planned.receiving:
        _fail_send(send, "nobody matched the audience at send time")
        return []
    with transaction.atomic():
        if not MassSend.objects.filter(pk=send.pk, status=MassSendStatus.SCHEDULED).update(
            status=MassSendStatus.SENDING, planned_at=now
        ):
            return []  # another dispatcher got there first
        batch_ids = _write_plan(send, planned)
    return batch_ids


def _fail_send(send: MassSend, error: str) -> None:
    MassSend.objects.filter(pk=send.pk, status=MassSendStatus.SCHEDULED).update(
        status=MassSendStatus.FAILED, error=error[:300]
    )


def _write_plan(send: MassSend, planned: Plan) -> list[int]:
    tenant = send.tenant
    by_staff: dict[int, list[tuple[int | None, str]]] = {}
    for customer_id, staff_id, target in planned.receiving:
        by_staff.setdefault(staff_id, []).append((customer_id, target))
    batches: list[Batch] = []
    members: list[tuple[Batch, list[tuple[int | None, str]]]] = []
    if send.kind == MassSendKind.MOMENTS:
        senders = sorted(by_staff)
        for seq, chunk in enumerate(_chunks(senders, MOMENT_SENDERS)):
            batch = Batch(
                tenant=tenant, mass_send=send, staff=None, seq=seq, key=_new_key(), size=len(chunk)
            )
            batches.append(batch)
        Batch.objects.bulk_create(batches)
        first = batches[0]
        Recipient.objects.bulk_create(
            (
                Recipient(
                    tenant=tenant,
                    mass_send=send,
                    batch=first,
                    customer_id=c,
                    staff_id=s,
                    target=t,
                    status=RecipientStatus.PLANNED,
                )
                for s in senders
                for c, t in by_staff[s]
            ),
            batch_size=5000,
        )
    else:
        size = _batch_size(send.kind)
        for staff_id in sorted(by_staff):
            for seq, part in enumerate(_chunks(by_staff[staff_id], size)):
                batch = Batch(
                    tenant=tenant,
                    mass_send=send,
                    staff_id=staff_id,
                    seq=seq,
                    key=_new_key(),
                    size=len(part),
                )
                batches.append(batch)
                members.append((batch, part))
        Batch.objects.bulk_create(batches)
        Recipient.objects.bulk_create(
            (
                Recipient(
                    tenant=tenant,
                    mass_send=send,
                    batch=batch,
                    customer_id=c,
                    staff_id=batch.staff_id,
                    target=t,
                    status=RecipientStatus.PLANNED,
                )
                for batch, chunk in members
                for c, t in chunk
            ),
            batch_size=5000,
        )
    Recipient.objects.bulk_create(
        (
            Recipient(
                tenant=tenant,
                mass_send=send,
                customer_id=c,
                target=t,
                status=RecipientStatus.EXCLUDED,
                reason=reason,
            )
            for c, t, reason in planned.excluded
        ),
        batch_size=5000,
    )
    return [b.pk for b in batches]


def _text_of(send: MassSend, batch: Batch) -> str:
    return send.text + marker(batch.key)


def _attachments_of(send: MassSend, batch: Batch) -> list[dict[str, Any]]:
    attachments = list(send.attachments)
    item = _content_item(send.content_item_id) if send.content_item_id else None
    if item is not None:
        from siyu.content.services import tracked_url

        sender = batch.staff or send.created_by
        if sender is None:
            raise InvalidInput("the mass send has no sender for its content link")
        url = tracked_url(item=item, sender=sender, source=f"masssend:{send.pk}")
        attachments.append(
            {
                "msgtype": "link",
                "link": {
                    "title": item.title,
                    "url": url,
                    "desc": getattr(item, "summary", "")[:512],
                },
            }
        )
    return attachments


def _body(send: MassSend, batch: Batch) -> dict[str, Any]:
    targets = list(batch.recipients.order_by("pk").values_list("target", flat=True))
    text = {"content": _text_of(send, batch)}
    attachments = _attachments_of(send, batch)
    if send.kind == MassSendKind.MOMENTS:
        senders = sorted(
            set(
                StaffMember.objects.filter(pk__in=batch.recipients.values("staff_id")).values_list(
                    "userid", flat=True
                )
            )
        )
        visible: dict[str, Any] = {"sender_list": {"user_list": senders}}
        if send.audience_kind == AudienceKind.TAGS:
            wecom_tags = list(
                Tag.objects.filter(
                    pk__in=send.audience["tag_ids"], wecom_id__isnull=False
                ).values_list("wecom_id", flat=True)
            )
            visible["external_contact_list"] = {"tag_list": wecom_tags}
        return {"text": text, "attachments": attachments, "visible_range": visible}
    sender = (
        batch.staff.userid if batch.staff is not None else ""
    )  # customer/group batches have one
    body: dict[str, Any] = {
        "sender": sender,
        "allow_select": False,
        "text": text,
        "attachments": attachments,
    }
    if send.kind == MassSendKind.GROUPS:
        body.update(chat_type="group", chat_id_list=targets)
    else:
        body.update(chat_type="single", external_userid=targets)
    return body


def batch_send(*, batch_id: int, client: WeComClient | None = None) -> str:
    """Create the batch's WeCom task if it is pending; returns what happened. Safe to run any
    number of times, from any number of workers (see the module docstring)."""
    batch = (
        Batch.objects.select_related("mass_send", "staff", "mass_send__created_by")
        .filter(pk=batch_id)
        .first()
    )
    if batch is None or batch.status != BatchStatus.PENDING:
        return "skipped"
    send = batch.mass_send
    if send.status == MassSendStatus.CANCELLED:
        _batch_cancel_local(batch)
        return "cancelled"
    body = _body(send, batch)
    attempt = batch.attempts + 1
    if not Batch.objects.filter(pk=batch.pk, status=BatchStatus.PENDING).update(
        status=BatchStatus.CALLING, attempts=attempt, calling_at=timezone.now()
    ):
        return "skipped"  # another worker claimed it
    own = client is None
    client = client or _client()
    try:
        if send.kind == MassSendKind.MOMENTS:
            answer = {"msgid": client.add_moment_task(body), "fail_list": []}
        else:
            answer = client.add_msg_template(body)
    except (RateLimited, TokenError) as exc:
        # Refused before anything was created (our governor, 45009, a bad token): not sent.
        Batch.objects.filter(pk=batch.pk, status=BatchStatus.CALLING, attempts=attempt).update(
            status=BatchStatus.PENDING, errcode=exc.errcode, errmsg=exc.errmsg[:200]
        )
        return "retry"
    except TransientError as exc:
        # Maybe applied, maybe not: left in ``calling`` for reconciliation.
        Batch.objects.filter(pk=batch.pk, status=BatchStatus.CALLING, attempts=attempt).update(
            errcode=exc.errcode, errmsg=exc.errmsg[:200]
        )
        return "uncertain"
    except WeComError as exc:
        _batch_failed(batch, attempt, exc.errcode, exc.errmsg)
        return "failed"
    finally:
        if own:
            client.close()
    _batch_created(
        batch,
        attempt,
        str(answer.get("msgid", "")),
        [str(x) for x in answer.get("fail_list") or []],
    )
    return "created"


def _batch_created(batch: Batch, attempt: int, msgid: str, fail_list: list[str]) -> bool:
    with transaction.atomic():
        if not Batch.objects.filter(
            pk=batch.pk, status=BatchStatus.CALLING, attempts=attempt
        ).update(status=BatchStatus.CREATED, msgid=msgid, errcode=0, errmsg=""):
            # Only possible if a call outlived the reconcile delay: WeCom may now hold two.
            logger.error(
                "mass-send batch %s answered after it was reconciled (msgid %s)", batch.pk, msgid
            )
            return False
        Recipient.objects.filter(batch=batch, status=RecipientStatus.PLANNED).update(
            status=RecipientStatus.PENDING
        )
        for chunk in _chunks(fail_list, _IN):
            Recipient.objects.filter(batch=batch, target__in=chunk).update(
                status=RecipientStatus.NOT_FRIEND
            )
    _finish_if_sent(batch.mass_send_id)
    return True


def _batch_failed(batch: Batch, attempt: int, errcode: int, errmsg: str) -> None:
    with transaction.atomic():
        if Batch.objects.filter(pk=batch.pk, status=BatchStatus.CALLING, attempts=attempt).update(
            status=BatchStatus.FAILED, errcode=errcode, errmsg=errmsg[:200]
        ):
            Recipient.objects.filter(batch=batch, status=RecipientStatus.PLANNED).update(
                status=RecipientStatus.FAILED
            )
    _finish_if_sent(batch.mass_send_id)


def _batch_cancel_local(batch: Batch) -> None:
    with transaction.atomic():
        if Batch.objects.filter(
            pk=batch.pk,
            status__in=[BatchStatus.PENDING, BatchStatus.CALLING],
            attempts=batch.attempts,
        ).update(status=BatchStatus.CANCELLED):
            Recipient.objects.filter(batch=batch, status=RecipientStatus.PLANNED).update(
                status=RecipientStatus.CANCELLED
            )


def _finish_if_sent(mass_send_id: int) -> None:
    """Every batch settled: the send's tasks exist (or failed); results follow by sync."""
    open_batches = Batch.objects.filter(
        mass_send_id=mass_send_id, status__in=[BatchStatus.PENDING, BatchStatus.CALLING]
    )
    if not open_batches.exists():
        MassSend.objects.filter(pk=mass_send_id, status=MassSendStatus.SENDING).update(
            status=MassSendStatus.SENT
        )


# --- recovery ------------------------------------------------------------------------------


def mass_send_recover(
    *, client: WeComClient | None = None, now: datetime | None = None
) -> dict[str, int]:
    """Settle batches whose call ended without a recorded answer (transient error, crashed
    worker): adopt WeCom's msgid when the batch's key is in WeCom's list, else make them
    pending again. Returns counts by outcome; the caller queues the pending ones."""
    now = now or timezone.now()
    stuck = list(
        Batch.objects.filter(status=BatchStatus.CALLING, calling_at__lt=now - _reconcile_after())
        .select_related("mass_send")
        .order_by("pk")
    )
    counts = {"adopted": 0, "resend": 0, "failed": 0}
    if not stuck:
        return counts
    own = client is None
    client = client or _client()
    try:
        for chat_type, kinds in (
            ("single", {MassSendKind.CUSTOMERS}),
            ("group", {MassSendKind.GROUPS}),
        ):
            batches = [b for b in stuck if b.mass_send.kind in kinds]
            if not batches:
                continue
            try:
                found = _listed_keys(client, chat_type, batches, now)
            except TransientError:
                continue  # WeCom unavailable: try again next sweep
            for batch in batches:
                msgid = found.get(batch.key)
                if msgid is not None:
                    counts["adopted"] += _batch_created(batch, batch.attempts, msgid, [])
                elif batch.mass_send.status == MassSendStatus.CANCELLED:
                    _batch_cancel_local(batch)  # never created, and now never will be
                elif Batch.objects.filter(
                    pk=batch.pk, status=BatchStatus.CALLING, attempts=batch.attempts
                ).update(status=BatchStatus.PENDING):
                    counts["resend"] += 1
        for batch in stuck:
            if batch.mass_send.kind == MassSendKind.MOMENTS:
                _batch_failed(
                    batch,
                    batch.attempts,
                    -1,
                    "outcome unknown: check WeCom's moments before sending again",
                )
                counts["failed"] += 1
    finally:
        if own:
            client.close()
    return counts


def _listed_keys(
    client: WeComClient, chat_type: str, batches: list[Batch], now: datetime
) -> dict[str, str]:
    """key → msgid of WeCom's mass sends around the batches' calls (windows ≤ 30 days)."""
    earliest = min(b.calling_at or now for b in batches) - timedelta(minutes=10)
    end = now + timedelta(minutes=10)
    found: dict[str, str] = {}
    start = earliest
    while start < end:
        stop = min(start + timedelta(days=30), end)
        for row in client.groupmsg_list(
            chat_type=chat_type, start_time=int(start.timestamp()), end_time=int(stop.timestamp())
        ):
            text = row.get("text") or {}
            key = marker_key(str(text.get("content", ""))) if isinstance(text, dict) else None
            if key:
                found[key] = str(row.get("msgid", ""))
        start = stop
    return found


def pending_batches(*, older_than: timedelta) -> list[int]:
    """Pending batches nobody is working on (their queued job was lost with a worker)."""
    cutoff = timezone.now() - older_than
    return list(
        Batch.objects.filter(status=BatchStatus.PENDING, mass_send__status=MassSendStatus.SENDING)
        .filter(
            Q(calling_at__lt=cutoff) | Q(calling_at__isnull=True, mass_send__planned_at__lt=cutoff)
        )
        .values_list("pk", flat=True)
    )


def due_mass_sends(*, now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return list(
        MassSend.objects.filter(status=MassSendStatus.SCHEDULED)
        .filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now))
        .values_list("pk", flat=True)
    )


# --- results -------------------------------------------------------------------------------

_RESULT = {
    1: RecipientStatus.DELIVERED,
    2: RecipientStatus.NOT_FRIEND,
    3: RecipientStatus.OVER_QUOTA,
}


def mass_send_sync(*, mass_send_id: int, client: WeComClient | None = None) -> int:
    """Read each created batch's confirmation and per-recipient results from WeCom and record
    what changed; returns the number of recipients changed. Safe to run any number of times."""
    send = MassSend.objects.get(pk=mass_send_id)
    if send.kind == MassSendKind.MOMENTS:
        return 0
    own = client is None
    client = client or _client()
    changed = 0
    try:
        batches = (
            Batch.objects.filter(mass_send=send, status=BatchStatus.CREATED)
            .exclude(msgid="")
            .select_related("staff")
        )
        for batch in batches:
            userid = batch.staff.userid if batch.staff is not None else ""
            if batch.confirmed_at is None:
                tasks = {str(t.get("userid")): t for t in client.groupmsg_tasks(batch.msgid)}
                task = tasks.get(userid)
                if task is None or int(task.get("status", 0) or 0) != 2:
                    continue
                _confirmed(send, batch, _when(task.get("send_time")))
            results = {
                str(r.get("external_userid") or r.get("chat_id") or ""): r
                for r in client.groupmsg_send_results(batch.msgid, userid)
            }
            changed += _apply_results(send, batch, results)
        MassSend.objects.filter(pk=send.pk).update(synced_at=timezone.now())
    finally:
        if own:
            client.close()
    return changed


def _when(value: Any) -> datetime:
    return (
        datetime.fromtimestamp(int(value), tz=timezone.get_current_timezone())
        if value
        else timezone.now()
    )


def _confirmed(send: MassSend, batch: Batch, at: datetime) -> None:
    with transaction.atomic():
        if Batch.objects.filter(pk=batch.pk, confirmed_at__isnull=True).update(confirmed_at=at):
            event_record(
                type=events.MASSSEND_SENT,
                source=SOURCE,
                occurred_at=at,
                idempotency_key=f"masssend:{batch.pk}:sent",
                payload={"mass_send_id": send.pk, "staff_id": batch.staff_id},
            )
    batch.confirmed_at = at


def _apply_results(send: MassSend, batch: Batch, results: dict[str, dict[str, Any]]) -> int:
    pending = list(
        batch.recipients.filter(status=RecipientStatus.PENDING).values_list(
            "pk", "target", "customer_id"
        )
    )
    changed = 0
    with transaction.atomic():
        by_status: dict[RecipientStatus, list[int]] = {}
        delivered: list[tuple[int, int | None, datetime]] = []
        for pk, target, customer_id in pending:
            row = results.get(target)
            if row is None:
                # Confirmed and not listed: WeCom refused it when the task was created.
                by_status.setdefault(RecipientStatus.FAILED, []).append(pk)
                continue
            status = _RESULT.get(int(row.get("status", 0) or 0))
            if status == RecipientStatus.DELIVERED:
                delivered.append((pk, customer_id, _when(row.get("send_time"))))
            elif status is not None:
                by_status.setdefault(status, []).append(pk)
        for outcome, pks in by_status.items():
            for chunk in _chunks(pks, _IN):
                changed += Recipient.objects.filter(
                    pk__in=chunk, status=RecipientStatus.PENDING
                ).update(status=outcome)
        for pk, customer, at in delivered:
            if not Recipient.objects.filter(pk=pk, status=RecipientStatus.PENDING).update(
                status=RecipientStatus.DELIVERED, delivered_at=at
            ):
                continue
            changed += 1
            if customer is not None:
                event_record(
                    type=events.MASSSEND_DELIVERED,
                    source=SOURCE,
                    customer_id=customer,
                    occurred_at=at,
                    idempotency_key=f"masssend:{send.pk}:delivered:{customer}",
                    payload={"mass_send_id": send.pk},
                )
    return changed


def open_for_sync(*, now: datetime | None = None) -> list[int]:
    """Sends whose members may still confirm: created tasks not yet confirmed or unread."""
    now = now or timezone.now()
    return list(
        MassSend.objects.filter(
            status__in=[MassSendStatus.SENDING, MassSendStatus.SENT],
            planned_at__gte=now - TRACK_FOR,
        )
        .filter(Q(synced_at__isnull=True) | Q(synced_at__lt=now - SYNC_EVERY))
        .exclude(kind=MassSendKind.MOMENTS)
        .filter(recipients__status=RecipientStatus.PENDING)
        .distinct()
        .values_list("pk", flat=True)
    )


# --- operator actions ----------------------------------------------------------------------


def _own_send(actor: StaffMember, mass_send_id: int) -> MassSend:
    from siyu.masssend.selectors import mass_send_get

    return mass_send_get(actor=actor, mass_send_id=mass_send_id)


def mass_send_cancel(
    *, actor: StaffMember, mass_send_id: int, client: WeComClient | None = None
) -> MassSend:
    """Stop a send: batches not yet created are never created; created tasks are cancelled in
    WeCom (what members already sent stays sent)."""
    send = _own_send(actor, mass_send_id)
    if send.status in (MassSendStatus.CANCELLED, MassSendStatus.FAILED):
        raise Conflict("this mass send has ended already")
    with transaction.atomic():
        MassSend.objects.filter(pk=send.pk).update(
            status=MassSendStatus.CANCELLED, cancelled_at=timezone.now()
        )
        for batch in send.batches.filter(status=BatchStatus.PENDING):
            _batch_cancel_local(batch)
        audit_record(actor=actor, action="masssend.cancel", target=send, details={})
    mass_send_cancel_remote(mass_send_id=send.pk, client=client)
    send.refresh_from_db()
    return send


def mass_send_cancel_remote(*, mass_send_id: int, client: WeComClient | None = None) -> int:
    """Cancel the created, unconfirmed tasks of a cancelled send in WeCom; returns how many."""
    batches = list(
        Batch.objects.filter(
            mass_send_id=mass_send_id,
            mass_send__status=MassSendStatus.CANCELLED,
            status=BatchStatus.CREATED,
            remote_cancelled=False,
        ).exclude(mass_send__kind=MassSendKind.MOMENTS)
    )
    if not batches:
        return 0
    own = client is None
    client = client or _client()
    done = 0
    try:
        for batch in batches:
            try:
                client.cancel_groupmsg(batch.msgid)
            except TransientError:
                continue  # the sweep tries again
            except WeComError as exc:
                logger.warning("cancel of mass send batch %s: %s", batch.pk, exc)
            Batch.objects.filter(pk=batch.pk).update(remote_cancelled=True)
            Recipient.objects.filter(batch=batch, status=RecipientStatus.PENDING).update(
                status=RecipientStatus.CANCELLED
            )
            done += 1
    finally:
        if own:
            client.close()
    return done


def mass_send_remind(
    *, actor: StaffMember, mass_send_id: int, client: WeComClient | None = None
) -> int:
    """Remind members who have not sent yet; WeCom allows 3 reminders per message per 24 h,
    so batches at the cap are skipped. Returns how many reminders went out."""
    send = _own_send(actor, mass_send_id)
    if (
        send.status not in (MassSendStatus.SENDING, MassSendStatus.SENT)
        or send.kind == MassSendKind.MOMENTS
    ):
        raise Conflict("only a sent mass send can be reminded")
    now = timezone.now()
    own = client is None
    client = client or _client()
    reminded = 0
    try:
        for batch in send.batches.filter(status=BatchStatus.CREATED, confirmed_at__isnull=True):
            sent = [datetime.fromisoformat(t) for t in batch.reminders]
            if governor.reminders_remaining(sent, now=now) == 0:
                continue
            try:
                client.remind_groupmsg(batch.msgid)
            except WeComError as exc:
                logger.info("remind of mass send batch %s: %s", batch.pk, exc)
                continue
            Batch.objects.filter(pk=batch.pk).update(
                reminders=[*batch.reminders, now.isoformat()][-10:]
            )
            reminded += 1
        with transaction.atomic():
            audit_record(
                actor=actor, action="masssend.remind", target=send, details={"reminded": reminded}
            )
    finally:
        if own:
            client.close()
    return reminded


def recipients_by_status(send: MassSend) -> dict[str, int]:
    return dict(
        send.recipients.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
