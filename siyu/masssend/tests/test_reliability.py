"""A mass send to 50,000 customers across 100 staff, with the worker killed twice mid-run and
the sandbox answering 10% of calls with transient errors (some of them *after* creating the
task): every intended recipient's task is created exactly once, none twice, and the final
report matches the sandbox's record. Real processes: a Celery worker on Redis, SIGKILLed."""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from siyu.accounts.models import Role
from siyu.accounts.services import department_upsert, staff_upsert
from siyu.core.services import tenant_create
from siyu.core.tenancy import tenant_context
from siyu.customers.models import StaffRelation
from siyu.masssend import services, tasks
from siyu.masssend.models import (
    AudienceKind,
    Batch,
    BatchStatus,
    MassSendKind,
    MassSendStatus,
    Recipient,
    RecipientStatus,
)
from siyu.masssend.selectors import mass_send_progress
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.sandbox.state import Follow
from siyu.testing.worker import MASSSEND_CRASH_DB, kill, redis_broker, start_worker, stop
from siyu.wecom.client.errors import TransientError

CUSTOMERS = 50_000
STAFF = 100
CONFIRMING = 2  # staff who confirm their task in the client before the final sync
CORP = "ww_masssend_rel"
TIMEOUT = 1  # the client's WeCom timeout (s); the reconcile delay is well above it
RECONCILE = 3


@pytest.fixture
def broker() -> Iterator[Celery]:
    with redis_broker(["siyu.core", "siyu.masssend"], db=MASSSEND_CRASH_DB) as app:
        yield app


def _wait(condition: Callable[[], bool], what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _customers(tenant_id: int) -> list[tuple[str, str]]:
    """CUSTOMERS customers, each followed by staff ``s<id % STAFF>``, inserted set-based (a
    row-by-row insert of 100,000 rows would dominate the test); returns (external_userid,
    userid) pairs for the sandbox."""
    json = "'{}'" if connection.vendor == "sqlite" else "CAST('{}' AS jsonb)"
    jlist = "'[]'" if connection.vendor == "sqlite" else "CAST('[]' AS jsonb)"
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (tenant_id, name, avatar, gender, type, corp_name,"  # noqa: S608
            " stage, attributes, created_at, updated_at)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s)"
            f" SELECT %s, 'c', '', 0, 1, '', 'normal', {json}, %s, %s FROM n",
            [CUSTOMERS, tenant_id, now, now],
        )
        cursor.execute(
            "INSERT INTO customers_staffrelation (tenant_id, customer_id, staff_id,"  # noqa: S608
            " external_userid, status, remark, description, remark_mobiles, add_way, state,"
            " oper_userid, delete_source, added_at, created_at)"
            f" SELECT c.tenant_id, c.id, s.id, 'wm' || c.id, 'active', '', '', {jlist}, 0, '',"
            " '', '', %s, %s FROM customers_customer c JOIN accounts_staffmember s"
            " ON s.tenant_id = c.tenant_id AND s.userid = 's' || (c.id %% %s)"
            " WHERE c.tenant_id = %s",
            [now - timedelta(days=1), now, STAFF, tenant_id],
        )
        if connection.vendor == "postgresql":
            # As autovacuum would after a bulk load: without statistics the planner joins
            # 50,000 rows by nested loops.
            cursor.execute("ANALYZE customers_customer")
            cursor.execute("ANALYZE customers_staffrelation")
    return list(StaffRelation.objects.values_list("external_userid", "staff__userid"))


def _created() -> int:
    return Batch.unscoped.filter(status=BatchStatus.CREATED).count()


def _settled() -> bool:
    return (
        not Batch.unscoped.filter(status__in=[BatchStatus.PENDING, BatchStatus.CALLING]).exists()
        and Batch.unscoped.exists()
    )


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_fan_out_is_exactly_once_through_crashes_and_transient_errors(
    broker: Celery, sandbox: Sandbox, tmp_path: Path, settings: Any
) -> None:
    settings.SIYU_WECOM_TIMEOUT_SECONDS = TIMEOUT
    settings.SIYU_MASS_SEND_RECONCILE_SECONDS = RECONCILE
    tenant = tenant_create(
        slug="massrel", name="Mass", corp_id=CORP, wecom_base_url=sandbox.api_base
    )
    tenant.contact_secret = "mass-secret"
    tenant.save()
    userids = [f"s{n}" for n in range(STAFF)]
    with SandboxControl(sandbox.base_url) as control:
        control.create_corp(CORP, "mass-secret", corp_name="Mass")
        control.add_staff(CORP, [{"userid": u, "name": u, "department": [1]} for u in userids])
    with tenant_context(tenant):
        department_upsert(wecom_id=1, name="总部")
        admin = [staff_upsert(userid=u, name=u, department_wecom_ids=[1]) for u in userids][0]
        admin.role = Role.ADMIN
        admin.save(update_fields=["role"])
        follows = _customers(tenant.pk)
    corp = sandbox.world.corps[CORP]
    with sandbox.world.lock:
        for ext, userid in follows:
            corp.customers[ext] = f"union-{ext}"
            corp.follows[f"{userid}|{ext}"] = Follow(userid, ext, 0)

    with SandboxControl(sandbox.base_url) as control:
        # 10% transient: busy and 502 (not applied) and answers lost after the task was made.
        control.set_faults(
            busy_rate=0.04,
            server_error_rate=0.03,
            timeout_after_rate=0.03,
            timeout_seconds=TIMEOUT + 0.5,
            seed=7,
        )
    worker_env = {
        "SIYU_WECOM_TIMEOUT_SECONDS": str(TIMEOUT),
        "SIYU_MASS_SEND_RECONCILE_SECONDS": str(RECONCILE),
    }
    started = time.monotonic()
    with tenant_context(tenant):
        send = services.mass_send_create(
            actor=admin,
            kind=MassSendKind.CUSTOMERS,
            name="reliability",
            audience_kind=AudienceKind.EXPRESSION,
            audience={"expression": "stage:normal"},
            text="周年庆，老客专享",
        )
    # Two workers share the queue, so a replacement is already up when one is killed (booting
    # one takes seconds); each kill lands mid-run, with jobs in flight.
    workers = [start_worker(tmp_path, broker, env=worker_env) for _ in range(2)]
    try:
        for kill_at in (STAFF // 4, STAFF * 3 // 5):
            _wait(lambda at=kill_at: _created() >= at, f"{kill_at} tasks")  # type: ignore[misc]
            kill(workers.pop(0))
            assert _created() < STAFF, "the worker should die mid-run"
            workers.append(start_worker(tmp_path, broker, env=worker_env))
            tasks.sweep(requeue_after_seconds=0, sync_results=False)
        deadline = time.monotonic() + 180
        while not _settled():
            assert time.monotonic() < deadline, "the send never settled"
            time.sleep(0.5)
            tasks.sweep(requeue_after_seconds=2, sync_results=False)
    finally:
        for worker in workers:
            stop(worker)
    fan_out = time.monotonic() - started

    with tenant_context(tenant):
        intended = dict(
            Recipient.objects.filter(mass_send=send)
            .exclude(status=RecipientStatus.EXCLUDED)
            .values_list("target", "staff__userid")
        )
        assert len(intended) == CUSTOMERS
        batches = list(Batch.objects.filter(mass_send=send).select_related("staff"))
        assert {b.status for b in batches} == {BatchStatus.CREATED}
        assert sum(b.attempts for b in batches) > len(batches), "some calls should have failed"
        # Exactly once: every intended customer in exactly one WeCom task, of their own staff.
        in_wecom = Counter(
            (u, t) for s in corp.mass_sends.values() for u, ts in s.targets.items() for t in ts
        )
        assert max(in_wecom.values()) == 1
        assert set(in_wecom) == {(u, t) for t, u in intended.items()}
        assert {b.msgid for b in batches} == set(corp.mass_sends)
        assert send.__class__.objects.get(pk=send.pk).status == MassSendStatus.SENT

        # Some members confirm; the synced report matches WeCom's record.
        for batch in batches[:CONFIRMING]:
            assert batch.staff is not None
            sandbox.simulator.run(
                CORP, "confirm_mass_send", {"msgid": batch.msgid, "userid": batch.staff.userid}
            )
        for _ in range(5):
            try:
                services.mass_send_sync(mass_send_id=send.pk)
                break
            except TransientError:
                continue
        report = {p.userid: p for p in mass_send_progress(send=send)}
    for record in corp.mass_sends.values():
        [(userid, status)] = [(u, st[0]) for u, st in record.task_status.items()]
        row = report[userid]
        assert (row.created, row.confirmed == 1) == (1, status == 2)
        delivered = sum(1 for st, _ in record.results.values() if st == 1)
        assert row.delivered == delivered
        assert row.pending == sum(1 for st, _ in record.results.values() if st == 0)
    assert sum(r.delivered for r in report.values()) == CONFIRMING * CUSTOMERS // STAFF
    print(f"fan-out with two crashes: {fan_out:.1f}s")  # noqa: T201
