"""Writes for transfers: start one, send it to WeCom, follow each customer until final.

The request is validated and recorded first (job, items, audit) in one transaction; WeCom is
called after commit, ≤100 ids a call, and each answer is written in its own transaction. A
crash or a network failure between the two leaves items ``pending``/``sending``, which the
periodic poll sends again or resolves from ``transfer_result``: nothing is lost, and an item's
status only moves forward through conditional updates, so nothing is recorded twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require, restrict, restrict_customers
from siyu.accounts.services import staff_upsert
from siyu.audit.services import audit_record
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers import services as customers
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.groupchats import services as groupchats
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.transfers import events
from siyu.transfers.models import (
    IN_FLIGHT,
    ChatItemStatus,
    ChatTransferItem,
    ItemStatus,
    JobStatus,
    TransferItem,
    TransferJob,
    TransferKind,
)
from siyu.wecom.client import governor
from siyu.wecom.client.client import TRANSFER_BATCH, WeComClient
from siyu.wecom.client.errors import TransientError, WeComError

SOURCE = "wecom"
MAX_CUSTOMERS_PER_JOB = 2000
MAX_CHATS_PER_JOB = governor.GROUP_CHAT_TRANSFERS_PER_OWNER_PER_DAY
MESSAGE_MAX = 200
# WeCom completes a transfer 24 h after it starts unless the customer refuses.
SETTLE_AFTER = timedelta(hours=24)
# A claim older than this whose call never returned an answer is sent again.
STUCK_AFTER = timedelta(minutes=10)

# Per-customer errcodes of transfer_customer (shared/wecom/README.md, Transfers).
ERRMSG = {
    40096: "无效的外部联系人",
    40097: "原跟进成员尚未离职",
    40099: "接替成员的客户数已达上限",
    40100: "该客户正在转接中",
    40128: "该客户 90 天内已转接两次",
    40129: "该客户正在转接中",
    40130: "原跟进成员与接替成员相同",
    40131: "原跟进成员不是该客户的跟进人",
}
# transfer_result's status: 1 done, 2 waiting, 3 refused, 4 takeover at limit (5 no record).
_RESULT_STATUS = {
    1: ItemStatus.ACCEPTED,
    2: ItemStatus.WAITING,
    3: ItemStatus.REFUSED,
    4: ItemStatus.LIMIT_EXCEEDED,
}


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _client() -> WeComClient:
    return WeComClient.for_tenant(get_current_tenant())


def _visible_member(actor: StaffMember, member_id: int, what: str) -> StaffMember:
    member = (
        restrict(StaffMember.objects.all(), actor, Action.TRANSFER_CUSTOMERS, owner_field="id")
        .filter(pk=member_id)
        .first()
    )
    if member is None:
        raise NotFound(f"{what} not found")
    return member


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


# --- starting a transfer -------------------------------------------------------------------


def transfer_customers(
    *,
    actor: StaffMember,
    handover_id: int,
    takeover_id: int,
    customer_ids: Iterable[int] = (),
    chat_ids: Iterable[str] = (),
    message: str = "",
    client: WeComClient | None = None,
) -> TransferJob:
    """Move customers (and group chats) from ``handover`` to ``takeover``.

    All or nothing up to WeCom: every customer must be visible to ``actor`` and follow the
    handover, every chat must be the handover's, or the request is refused and nothing is sent.
    On-job or resigned follows from the handover's status. WeCom's per-customer answers are
    recorded on the items; failed ones leave the customer with the handover.
    """
    require(actor, Action.TRANSFER_CUSTOMERS)
    ids = _unique(customer_ids)
    chats = _unique(chat_ids)
    if not ids and not chats:
        raise InvalidInput("choose at least one customer or group chat to transfer")
    if len(ids) > MAX_CUSTOMERS_PER_JOB:
        raise InvalidInput(f"transfer at most {MAX_CUSTOMERS_PER_JOB} customers at once")
    if len(message) > MESSAGE_MAX:
        raise InvalidInput(f"the message may hold at most {MESSAGE_MAX} characters")
    handover = _visible_member(actor, handover_id, "handover member")
    takeover = _visible_member(actor, takeover_id, "takeover member")
    if handover.pk == takeover.pk:
        raise InvalidInput("the takeover member must differ from the handover member")
    if takeover.status != StaffStatus.ACTIVE or not takeover.customer_contact_enabled:
        raise InvalidInput("the takeover member must be active and have customer contact enabled")
    kind = TransferKind.RESIGNED if handover.status == StaffStatus.LEFT else TransferKind.ONJOB
    if kind == TransferKind.RESIGNED and message:
        raise InvalidInput("WeCom sends no message for a departed member's customers")
    ext_of = _customers_of(actor, handover, ids)
    chat_names = _chats_of(handover, chats)
    over_quota = _over_quota(ext_of) if kind == TransferKind.ONJOB else set()
    with transaction.atomic():
        job = TransferJob.objects.create(
            kind=kind, handover=handover, takeover=takeover, message=message, created_by=actor
        )
        TransferItem.objects.bulk_create(
            TransferItem(
                tenant=job.tenant,
                job=job,
                customer_id=customer_id,
                external_userid=ext,
                **(
                    {"status": ItemStatus.FAILED, "errcode": 40128, "errmsg": ERRMSG[40128]}
                    if customer_id in over_quota
                    else {}
                ),
            )
            for customer_id, ext in ext_of.items()
        )
        ChatTransferItem.objects.bulk_create(
            ChatTransferItem(tenant=job.tenant, job=job, chat_id=chat_id, name=chat_names[chat_id])
            for chat_id in chats
        )
        audit_record(
            actor=actor,
            action="customers.transfer",
            target=job,
            details={
                "kind": kind,
                "handover": handover.userid,
                "takeover": takeover.userid,
                "customers": len(ext_of),
                "chats": len(chats),
            },
        )
    transfer_job_send(job_id=job.pk, client=client)
    job.refresh_from_db()
    return job


def _customers_of(actor: StaffMember, handover: StaffMember, ids: list[int]) -> dict[int, str]:
    """customer id → the external_userid by which ``handover`` follows them."""
    if not ids:
        return {}
    visible = set(
        restrict_customers(
            Customer.objects.filter(pk__in=ids), actor, Action.TRANSFER_CUSTOMERS
        ).values_list("pk", flat=True)
    )
    missing = [i for i in ids if i not in visible]
    if missing:
        raise NotFound("customers not found", details={"customer_ids": missing})
    ext_of = dict(
        StaffRelation.objects.filter(
            staff=handover, customer_id__in=ids, status=RelationStatus.ACTIVE
        ).values_list("customer_id", "external_userid")
    )
    strangers = [i for i in ids if i not in ext_of]
    if strangers:
        raise InvalidInput(
            f"these customers are not followed by {handover.name}",
            details={"customer_ids": strangers},
        )
    busy = sorted(
        set(
            TransferItem.objects.filter(customer_id__in=ids, status__in=IN_FLIGHT).values_list(
                "customer_id", flat=True
            )
        )
    )
    if busy:
        raise Conflict(
            "these customers are being transferred already", details={"customer_ids": busy}
        )
    return {i: ext_of[i] for i in ids}


def _chats_of(handover: StaffMember, chat_ids: list[str]) -> dict[str, str]:
    """chat id → name, for chats the handover owns."""
    if not chat_ids:
        return {}
    if len(chat_ids) > MAX_CHATS_PER_JOB:
        raise InvalidInput(f"transfer at most {MAX_CHATS_PER_JOB} group chats at once")
    owned = dict(
        GroupChat.objects.filter(
            chat_id__in=chat_ids, owner=handover, status=GroupChatStatus.ACTIVE
        ).values_list("chat_id", "name")
    )
    missing = [c for c in chat_ids if c not in owned]
    if missing:
        raise NotFound("group chats not found", details={"chat_ids": missing})
    moved_today = ChatTransferItem.objects.filter(
        job__handover=handover,
        status=ChatItemStatus.DONE,
        updated_at__gte=timezone.now() - timedelta(days=1),
    ).count()
    if len(chat_ids) > governor.group_chat_transfers_remaining(moved_today):
        raise InvalidInput(
            f"WeCom moves at most {governor.GROUP_CHAT_TRANSFERS_PER_OWNER_PER_DAY} group chats "
            f"a day per owner; {moved_today} were moved in the last 24 hours"
        )
    return owned


def _over_quota(ext_of: dict[int, str]) -> set[int]:
    """Customers that already took their on-job transfers for 90 days: refused here, so WeCom
    is not asked for what it would refuse (40128)."""
    since = timezone.now() - governor.TRANSFER_WINDOW
    previous: dict[int, list[datetime]] = {}
    for customer_id, sent_at in TransferItem.objects.filter(
        customer_id__in=list(ext_of),
        job__kind=TransferKind.ONJOB,
        status__in=[ItemStatus.WAITING, ItemStatus.ACCEPTED],
        sent_at__gte=since,
    ).values_list("customer_id", "sent_at"):
        if sent_at is not None:
            previous.setdefault(customer_id, []).append(sent_at)
    return {c for c, times in previous.items() if governor.transfers_remaining(times) == 0}


# --- sending -------------------------------------------------------------------------------


def transfer_job_send(*, job_id: int, client: WeComClient | None = None) -> int:
    """Send the job's pending items to WeCom, ≤100 a call; returns how many were sent.

    Items are claimed (pending → sending, with a claim token) before each call, so two
    senders never send the same customer. A transient failure puts the chunk back to pending
    for the next poll; a permanent one fails the chunk with WeCom's errcode.
    """
    job = TransferJob.objects.select_related("handover", "takeover").get(pk=job_id)
    own = client is None
    client = client or _client()
    sent = 0
    try:
        while True:
            chunk = _claim(job)
            if not chunk:
                break
            try:
                answers = client.transfer_customers(
                    handover_userid=job.handover.userid,
                    takeover_userid=job.takeover.userid,
                    external_userids=[item.external_userid for item in chunk],
                    resigned=job.kind == TransferKind.RESIGNED,
                    message=job.message,
                )
            except TransientError:
                TransferItem.objects.filter(
                    pk__in=[i.pk for i in chunk], status=ItemStatus.SENDING
                ).update(status=ItemStatus.PENDING)
                break
            except WeComError as exc:
                answers = [
                    {"external_userid": i.external_userid, "errcode": exc.errcode} for i in chunk
                ]
            _record_answers(job, chunk, answers)
            sent += len(chunk)
        _send_chats(job, client)
    finally:
        if own:
            client.close()
    _finish_if_done(job)
    return sent


def _claim(job: TransferJob) -> list[TransferItem]:
    ids = list(
        job.items.filter(status=ItemStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)[:TRANSFER_BATCH]
    )
    if not ids:
        return []
    token = uuid.uuid4().hex
    TransferItem.objects.filter(pk__in=ids, status=ItemStatus.PENDING).update(
        status=ItemStatus.SENDING, claim=token, sent_at=timezone.now()
    )
    return list(TransferItem.objects.filter(claim=token).select_related("customer"))


def _record_answers(
    job: TransferJob, chunk: list[TransferItem], answers: list[dict[str, Any]]
) -> None:
    code_of = {str(a.get("external_userid", "")): int(a.get("errcode", 0) or 0) for a in answers}
    now = timezone.now()
    with transaction.atomic():
        for item in chunk:
            code = code_of.get(item.external_userid, -1)
            if code == 0:
                updated = TransferItem.objects.filter(pk=item.pk, status=ItemStatus.SENDING).update(
                    status=ItemStatus.WAITING, takeover_at=now + SETTLE_AFTER
                )
                if updated:
                    event_record(
                        type=events.CUSTOMER_TRANSFER_REQUESTED,
                        source=SOURCE,
                        customer_id=item.customer_id,
                        idempotency_key=f"transfer:{item.pk}:requested",
                        payload=_payload(job, item),
                    )
            else:
                errmsg = ERRMSG.get(code, "企业微信未受理" if code == -1 else f"errcode {code}")
                _close(item, ItemStatus.FAILED, errcode=code, errmsg=errmsg, reason=errmsg)


def _send_chats(job: TransferJob, client: WeComClient) -> None:
    pending = list(job.chat_items.filter(status=ChatItemStatus.PENDING).order_by("pk"))
    for start in range(0, len(pending), TRANSFER_BATCH):
        chunk = pending[start : start + TRANSFER_BATCH]
        try:
            failed = client.transfer_group_chats(
                chat_ids=[c.chat_id for c in chunk],
                new_owner=job.takeover.userid,
                resigned=job.kind == TransferKind.RESIGNED,
            )
        except TransientError:
            return  # still pending: the next poll sends them
        except WeComError as exc:
            failed = [
                {"chat_id": c.chat_id, "errcode": exc.errcode, "errmsg": exc.errmsg} for c in chunk
            ]
        failures = {str(f.get("chat_id", "")): f for f in failed}
        for chat in chunk:
            failure = failures.get(chat.chat_id)
            if failure is not None:
                ChatTransferItem.objects.filter(pk=chat.pk, status=ChatItemStatus.PENDING).update(
                    status=ChatItemStatus.FAILED,
                    errcode=int(failure.get("errcode", -1) or -1),
                    errmsg=str(failure.get("errmsg", ""))[:200],
                )
                continue
            with transaction.atomic():
                ChatTransferItem.objects.filter(pk=chat.pk, status=ChatItemStatus.PENDING).update(
                    status=ChatItemStatus.DONE
                )
            _refresh_chat(client, chat.chat_id)


def _refresh_chat(client: WeComClient, chat_id: str) -> None:
    """Take the new owner from WeCom itself (no callback tells of API-driven changes)."""
    try:
        detail = client.group_chat(chat_id)
    except WeComError:
        return  # reconciliation will catch up
    with transaction.atomic():
        groupchats.group_chat_apply(detail, source=SOURCE, at=timezone.now())


# --- following up --------------------------------------------------------------------------


def transfer_job_poll(*, job_id: int, client: WeComClient | None = None) -> int:
    """Ask WeCom how the job's waiting customers are doing and apply what is final; send
    what is still pending. Returns how many items changed. Safe to run any number of times."""
    job = TransferJob.objects.select_related("handover", "takeover").get(pk=job_id)
    own = client is None
    client = client or _client()
    changed = 0
    try:
        items = list(job.items.filter(status__in=[ItemStatus.WAITING, ItemStatus.SENDING]))
        if items:
            latest: dict[str, dict[str, Any]] = {}
            for row in client.transfer_results(
                handover_userid=job.handover.userid,
                takeover_userid=job.takeover.userid,
                resigned=job.kind == TransferKind.RESIGNED,
            ):
                latest[str(row.get("external_userid", ""))] = row  # the last is the newest
            for item in items:
                changed += _apply_result(job, item, latest.get(item.external_userid))
        TransferJob.objects.filter(pk=job.pk).update(polled_at=timezone.now())
        changed += transfer_job_send(job_id=job.pk, client=client)
    finally:
        if own:
            client.close()
    return changed


def _apply_result(job: TransferJob, item: TransferItem, row: dict[str, Any] | None) -> int:
    if row is None:
        stuck = item.sent_at is not None and timezone.now() - item.sent_at > STUCK_AFTER
        if item.status == ItemStatus.SENDING and stuck:
            # The call never reached WeCom (no record there): send it again.
            return TransferItem.objects.filter(pk=item.pk, status=ItemStatus.SENDING).update(
                status=ItemStatus.PENDING
            )
        return 0
    status = _RESULT_STATUS.get(int(row.get("status", 0) or 0))
    at = _ts(row.get("takeover_time"))
    if status == ItemStatus.ACCEPTED:
        return int(_accept(job, item, at=at or timezone.now(), ensure_takeover=True))
    if status == ItemStatus.WAITING:
        # WeCom's scheduled completion time replaces our estimate; an unchanged row is no change.
        return (
            TransferItem.objects.filter(
                pk=item.pk, status__in=[ItemStatus.WAITING, ItemStatus.SENDING]
            )
            .exclude(status=ItemStatus.WAITING, takeover_at=at)
            .update(status=ItemStatus.WAITING, takeover_at=at)
        )
    if status in (ItemStatus.REFUSED, ItemStatus.LIMIT_EXCEEDED):
        reason = "customer_refused" if status == ItemStatus.REFUSED else "customer_limit_exceed"
        return int(_close(item, status, reason=reason))
    return 0


def _payload(job: TransferJob, item: TransferItem) -> dict[str, Any]:
    return {
        "job_id": job.pk,
        "item_id": item.pk,
        "kind": job.kind,
        "from_userid": job.handover.userid,
        "to_userid": job.takeover.userid,
        "external_userid": item.external_userid,
    }


def _accept(job: TransferJob, item: TransferItem, *, at: datetime, ensure_takeover: bool) -> bool:
    """The customer now belongs to the takeover member: end the handover's relation, make the
    takeover's the active one, and record the handover in the customer's history."""
    with transaction.atomic():
        updated = TransferItem.objects.filter(
            pk=item.pk, status__in=[ItemStatus.WAITING, ItemStatus.SENDING]
        ).update(status=ItemStatus.ACCEPTED, takeover_at=at, errcode=0, errmsg="")
        if updated != 1:
            return False
        ext = item.external_userid
        old = StaffRelation.objects.filter(staff=job.handover, external_userid=ext).first()
        if old is not None and old.status in (RelationStatus.ACTIVE, RelationStatus.HALF):
            customers.relation_deleted(
                staff=job.handover,
                external_userid=ext,
                at=at,
                by="staff",
                source=SOURCE,
                delete_source=events.DELETE_BY_TRANSFER,
                idempotency_key=f"transfer:{item.pk}:handover",
            )
        new = StaffRelation.objects.filter(staff=job.takeover, external_userid=ext).first()
        # The takeover's add_external_contact callback creates the relation too (unless they
        # were friends already); the poll does not wait for it, API-driven changes may not call.
        if ensure_takeover and (new is None or new.status != RelationStatus.ACTIVE):
            customers.relation_added(
                staff=job.takeover,
                external_userid=ext,
                at=at,
                source=SOURCE,
                state=old.state if old is not None else "",
                add_way=202 if job.kind == TransferKind.RESIGNED else 201,
                details={"oper_userid": job.handover.userid},
                idempotency_key=f"transfer:{item.pk}:takeover",
            )
        event_record(
            type=events.CUSTOMER_TRANSFERRED,
            source=SOURCE,
            customer_id=item.customer_id,
            occurred_at=at,
            idempotency_key=f"transfer:{item.pk}:accepted",
            payload=_payload(job, item),
        )
    return True


def _close(
    item: TransferItem,
    status: str,
    *,
    reason: str,
    errcode: int = 0,
    errmsg: str = "",
    record: bool = True,
) -> bool:
    """A final outcome other than success; the customer stays with the handover."""
    with transaction.atomic():
        updated = TransferItem.objects.filter(pk=item.pk, status__in=IN_FLIGHT).update(
            status=status, errcode=errcode, errmsg=errmsg[:200]
        )
        if updated != 1:
            return False
        if record:
            job = TransferJob.objects.select_related("handover", "takeover").get(pk=item.job_id)
            event_record(
                type=events.TRANSFER_FAILED,
                source=SOURCE,
                customer_id=item.customer_id,
                idempotency_key=f"transfer:{item.pk}:{status}",
                payload={
                    **_payload(job, item),
                    "takeover_userid": job.takeover.userid,
                    "reason": reason,
                    "errcode": errcode,
                },
            )
    return True


def _finish_if_done(job: TransferJob) -> None:
    open_items = job.items.filter(status__in=IN_FLIGHT).exists()
    open_chats = job.chat_items.filter(status=ChatItemStatus.PENDING).exists()
    if not open_items and not open_chats:
        TransferJob.objects.filter(pk=job.pk, status=JobStatus.OPEN).update(
            status=JobStatus.DONE, finished_at=timezone.now()
        )


def transfer_item_refused(*, takeover_userid: str, external_userid: str, reason: str) -> bool:
    """WeCom's transfer_fail callback: the waiting item for this customer and takeover member
    ends (its event is the callback's own)."""
    item = _waiting_item(external_userid=external_userid, job__takeover__userid=takeover_userid)
    if item is None:
        return False
    status = ItemStatus.LIMIT_EXCEEDED if reason == "customer_limit_exceed" else ItemStatus.REFUSED
    closed = _close(item, status, reason=reason, record=False)
    _finish_if_done(item.job)
    return closed


def transfer_item_completed(*, handover_userid: str, external_userid: str, at: datetime) -> bool:
    """del_external_contact with Source=DELETE_BY_TRANSFER: WeCom completed the transfer."""
    item = _waiting_item(external_userid=external_userid, job__handover__userid=handover_userid)
    if item is None:
        return False
    job = TransferJob.objects.select_related("handover", "takeover").get(pk=item.job_id)
    accepted = _accept(job, item, at=at, ensure_takeover=False)
    _finish_if_done(job)
    return accepted


def _waiting_item(**lookup: str) -> TransferItem | None:
    return (
        TransferItem.objects.select_related("job")
        .filter(status__in=[ItemStatus.WAITING, ItemStatus.SENDING], **lookup)
        .order_by("-pk")
        .first()
    )


# --- unassigned customers of departed members ----------------------------------------------


def unassigned_sync(*, client: WeComClient | None = None) -> dict[str, int]:
    """Read WeCom's list of departed members' customers not yet transferred and make Siyu
    agree: the member is marked as left, and a relation Siyu never saw is recorded, so each
    of these customers is listed as unassigned until someone transfers them."""
    own = client is None
    client = client or _client()
    counts = {"unassigned": 0, "staff_marked_left": 0, "relations_added": 0}
    members = {m.userid: m for m in StaffMember.objects.all()}
    try:
        for row in client.unassigned_customers():
            userid = str(row.get("handover_userid", ""))
            ext = str(row.get("external_userid", ""))
            if not userid or not ext:
                continue
            counts["unassigned"] += 1
            at = _ts(row.get("dimission_time")) or timezone.now()
            member = members.get(userid)
            if member is None or member.status != StaffStatus.LEFT:
                member = staff_upsert(
                    userid=userid, name=member.name if member else userid, status=StaffStatus.LEFT
                )
                members[userid] = member
                counts["staff_marked_left"] += 1
            known = StaffRelation.objects.filter(
                staff=member, external_userid=ext, status=RelationStatus.ACTIVE
            ).exists()
            if not known:
                with transaction.atomic():
                    customers.relation_added(
                        staff=member,
                        external_userid=ext,
                        at=at,
                        source=SOURCE,
                        idempotency_key=f"unassigned:{userid}:{ext}",
                    )
                counts["relations_added"] += 1
    finally:
        if own:
            client.close()
    return counts
