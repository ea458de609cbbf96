"""The callback inbox: store first, acknowledge, then process exactly once in the background."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.models import Tenant
from siyu.core.services import retry_delay
from siyu.core.tenancy import tenant_context
from siyu.wecom.callback.fastlane import WelcomeCodeArrived
from siyu.wecom.callback.handlers import Inbound, handler_for
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import RateLimited, TransientError
from siyu.wecom.models import CallbackInbox, InboxStatus

logger = logging.getLogger(__name__)
ENQUEUE_CHUNK = 50


def dedupe_key(message: str) -> str:
    return hashlib.sha1(message.encode()).hexdigest()  # noqa: S324 (an identity, not a secret)


def _create_time(data: dict[str, Any]) -> datetime:
    raw = str(data.get("CreateTime", "") or "")
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw), tz=UTC)
    return timezone.now()


def inbox_store(*, tenant: Tenant, message: str, data: dict[str, Any]) -> CallbackInbox | None:
    """Store a verified, decrypted callback; None if it duplicates one already stored (counted).

    Called by the receiver before it answers WeCom: outside a transaction it returns only once the
    row is committed. Inside the caller's transaction, that transaction's commit decides, and it
    is never shared with other requests. Processing is enqueued after commit.
    """
    item = CallbackInbox(
        tenant=tenant,
        dedupe_key=dedupe_key(message),
        event=str(data.get("Event", ""))[:64],
        change_type=str(data.get("ChangeType", ""))[:64],
        create_time=_create_time(data),
        message=message,
        data=data,
        next_attempt_at=timezone.now(),
    )
    pending = _Pending(item)
    if connection.in_atomic_block:
        transaction.on_commit(partial(_dispatch, [pending], _write([pending])))
    else:
        _group.submit(pending)
    return item if pending.stored else None


@dataclass(eq=False)
class _Pending:
    item: CallbackInbox
    stored: bool = False  # False: a duplicate of a stored row
    error: Exception | None = None
    lead: bool = False  # handed the lead by the previous writer
    done: threading.Event = field(default_factory=threading.Event)


class _GroupCommit:
    """Concurrent callbacks in one process share one INSERT and one commit (one WAL flush).

    A request that arrives while no write is running becomes the writer: it takes every row
    waiting at that moment, its own included, writes them in one autocommit statement on its own
    connection, wakes their requests, and hands the lead to the first row that arrived meanwhile.
    So each request waits for at most the write in progress plus its own, is answered only after
    its row is committed, and batches form only under concurrency: alone, a row is a batch of one.
    """

    MAX_BATCH = 500  # rows per statement, far below the databases' bound-parameter limits

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writing = False

    def submit(self, pending: _Pending) -> None:
        with self._lock:
            self._queue.append(pending)
            lead = not self._writing
            self._writing = True
        if not lead:
            pending.done.wait()
            if not pending.lead:
                if pending.error is not None:
                    raise DatabaseError("the batch holding this callback failed") from pending.error
                return
        with self._lock:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
        ids: list[int] = []
        try:
            ids = _write(batch)
        except Exception as exc:
            for other in batch:
                other.error = exc
            raise
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._writing = False
            for other in batch:
                if other is not pending:
                    other.done.set()
        # After the answers: a lost enqueue only delays processing until the sweep.
        _dispatch(batch, ids)


_group = _GroupCommit()
_COLUMNS = [f for f in CallbackInbox._meta.concrete_fields if not f.primary_key]


def _write(batch: list[_Pending]) -> list[int]:
    """Insert the batch's new rows in one statement and count the rest as duplicates; returns
    the new rows' ids. Duplicates may repeat a stored row or one earlier in the same batch."""
    first: dict[tuple[int, str], _Pending] = {}
    repeats: Counter[tuple[int, str]] = Counter()
    for pending in batch:
        ident = (pending.item.tenant_id, pending.item.dedupe_key)
        if ident in first:
            repeats[ident] += 1
        else:
            first[ident] = pending
    # Raw SQL because the ORM cannot say "insert these, skip the ones already stored, and tell
    # me which were new" (bulk_create(ignore_conflicts=True) returns no ids). Only identifiers
    # from the model are interpolated (attname: no field renames its column); every value is a
    # bound parameter.
    qn = connection.ops.quote_name
    rows = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {qn(CallbackInbox._meta.db_table)} "  # noqa: S608
        f"({', '.join(qn(f.attname) for f in _COLUMNS)}) VALUES {', '.join([rows] * len(first))} "
        f"ON CONFLICT ({qn('tenant_id')}, {qn('dedupe_key')}) DO NOTHING "
        f"RETURNING {qn('id')}, {qn('tenant_id')}, {qn('dedupe_key')}"
    )
    params = [
        f.get_db_prep_save(f.pre_save(p.item, add=True), connection)
        for p in first.values()
        for f in _COLUMNS
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = {(tenant_id, key): pk for pk, tenant_id, key in cursor.fetchall()}
    for ident, pending in first.items():
        if ident in inserted:
            pending.item.pk = inserted[ident]
            pending.item._state.adding = False
            pending.item._state.db = connection.alias
            pending.stored = True
        else:
            repeats[ident] += 1
    by_count: dict[tuple[int, int], list[str]] = defaultdict(list)
    for (tenant_id, key), count in repeats.items():
        by_count[(tenant_id, count)].append(key)
    for (tenant_id, count), keys in by_count.items():
        CallbackInbox.unscoped.filter(tenant_id=tenant_id, dedupe_key__in=keys).update(
            duplicates=F("duplicates") + count
        )
    return list(inserted.values())


def _dispatch(batch: list[_Pending], ids: list[int]) -> None:
    """After the commit: welcome codes to their lane first, then the processing jobs."""
    from siyu.wecom.tasks import welcome_code_arrived

    for pending in batch:
        arrival = WelcomeCodeArrived.of(pending.item) if pending.stored else None
        if arrival is None:
            continue
        try:
            welcome_code_arrived.delay(pending.item.tenant_id, arrival.dump())
        except Exception:
            # The processing path sends the welcome itself when this lane did not.
            logger.exception("could not enqueue welcome code of callback %s", pending.item.pk)
    _enqueue(ids)


def _enqueue(ids: list[int], countdown: float = 0) -> None:
    """One job per chunk of ids (not per callback): fewer broker round trips, while chunks still
    spread a burst over the workers. Each id is still claimed on its own."""
    from siyu.wecom.tasks import process_callbacks

    for start in range(0, len(ids), ENQUEUE_CHUNK):
        chunk = ids[start : start + ENQUEUE_CHUNK]
        try:
            process_callbacks.apply_async((chunk,), countdown=countdown)
        except Exception:
            logger.exception("could not enqueue callbacks %s; the sweep will pick them up", chunk)


def inbox_process(*, inbox_id: int, client: WeComClient | None = None) -> str:
    """Process one stored callback if it is pending and due; returns what happened."""
    item = CallbackInbox.unscoped.select_related("tenant").filter(pk=inbox_id).first()
    if item is None or item.status != InboxStatus.PENDING:
        return "skipped"
    if item.next_attempt_at > timezone.now():
        return "not_due"
    handler = handler_for(item.event, item.change_type)
    with tenant_context(item.tenant):
        if handler is None:
            # Events Siyu does not act on (yet) are kept for replay, not treated as failures.
            CallbackInbox.objects.filter(pk=item.pk, status=InboxStatus.PENDING).update(
                status=InboxStatus.DONE, processed_at=timezone.now(), last_error="no handler"
            )
            return "ignored"
        msg = Inbound(key=item.dedupe_key, data=item.data, at=item.create_time)
        try:
            prepared = None
            if handler.prepare is not None:
                own = client is None
                api = client or WeComClient.for_tenant(item.tenant)
                try:
                    prepared = handler.prepare(api, msg)
                finally:
                    if own:
                        api.close()
            with transaction.atomic():
                claimed = CallbackInbox.objects.filter(
                    pk=item.pk, status=InboxStatus.PENDING
                ).update(
                    status=InboxStatus.DONE,
                    attempts=F("attempts") + 1,
                    processed_at=timezone.now(),
                    last_error="",
                )
                if claimed != 1:
                    return "skipped"
                handler.apply(msg, prepared)
        except RateLimited as exc:
            return _fail(item, f"rate limited: {exc}", delay=timedelta(seconds=exc.retry_after))
        except TransientError as exc:
            return _fail(item, f"transient: {exc}")
        except Exception as exc:
            logger.exception("callback %s (%s/%s) failed", item.pk, item.event, item.change_type)
            return _fail(item, f"{type(exc).__name__}: {exc}")
    return "done"


def _fail(item: CallbackInbox, error: str, *, delay: timedelta | None = None) -> str:
    attempts = item.attempts + 1
    if attempts >= settings.SIYU_EVENT_MAX_ATTEMPTS:
        CallbackInbox.unscoped.filter(pk=item.pk, status=InboxStatus.PENDING).update(
            status=InboxStatus.DEAD, attempts=attempts, last_error=error[:4000]
        )
        return "dead"
    delay = delay or retry_delay(attempts)
    CallbackInbox.unscoped.filter(pk=item.pk, status=InboxStatus.PENDING).update(
        attempts=attempts, last_error=error[:4000], next_attempt_at=timezone.now() + delay
    )
    transaction.on_commit(lambda: _enqueue([item.pk], countdown=delay.total_seconds()))
    return "retry"


def inbox_sweep(*, grace_seconds: int = 60, batch: int = 1000) -> int:
    """Re-enqueue stored callbacks whose job was lost (broker down, worker killed)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    ids = list(
        CallbackInbox.unscoped.filter(status=InboxStatus.PENDING, next_attempt_at__lte=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:batch]
    )
    if ids:
        _enqueue(ids)
    return len(ids)


def inbox_replay(
    *,
    tenant: Tenant,
    first_id: int | None = None,
    last_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_dead_only: bool = False,
) -> list[int]:
    """Mark a range of stored callbacks pending again and enqueue them, oldest first.

    Handlers are idempotent (event keys, newer-change-wins), so replaying processed callbacks
    repairs state without duplicating events.
    """
    with tenant_context(tenant):
        qs = CallbackInbox.objects.all()
        if first_id is not None:
            qs = qs.filter(pk__gte=first_id)
        if last_id is not None:
            qs = qs.filter(pk__lte=last_id)
        if since is not None:
            qs = qs.filter(received_at__gte=since)
        if until is not None:
            qs = qs.filter(received_at__lte=until)
        if include_dead_only:
            qs = qs.filter(status=InboxStatus.DEAD)
        ids = list(qs.order_by("create_time", "pk").values_list("pk", flat=True))
        CallbackInbox.objects.filter(pk__in=ids).update(
            status=InboxStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
        )
    transaction.on_commit(lambda: _enqueue(ids))
    return ids
