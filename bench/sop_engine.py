"""SOP engine benchmark: due-step dispatch throughput and scheduler lag, batched vs per-row.

Generates N customers (default 1,000,000), each with an active staff relation and an active
enrolment in a 5-step SOP (actions: staff task, tag, staff task, stage, staff task; one day
between steps), in a dedicated PostgreSQL database (``siyu_bench_sop``) with INSERT … SELECT
generate_series. The enrolments' due times are spread over 30 days, except ``--due`` × 2 rows
that are due now. Then, in one process and the same run:

1. **per-row baseline**: the naive dispatcher — list due ids, then one transaction per row
   that locks it, loads the SOP's steps and runs the step (``--due`` rows);
2. **batched claim**: ``sop_dispatch_batch`` — ``SELECT … FOR UPDATE SKIP LOCKED`` of 200 due
   rows, the plan loaded once per batch, one transaction per batch with a savepoint per row
   (the other ``--due`` rows);
3. **scheduler lag**: ``--paced`` rows made due uniformly over ``--seconds`` (an open-loop
   arrival at about half the batched throughput), dispatched by a polling loop (0.2 s when
   idle) — first per-row, then batched on fresh rows — and due → run p50/p99 read from
   ``StepRun`` (``ran_at`` − ``due_at``).

Every step is a real step: a ``StepRun`` row, the actions (workspace task, tag + WeCom mark
push row, lifecycle stage with its event), a ``sop.step_reached`` event with its deliveries.
Broker: in-memory (nothing consumes the queued jobs). Usage: ``make bench-sop``.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from typing import Any

from harness import ensure_database, percentile, progress, setup_django

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/siyu_bench_sop"
STAFF = 200


def generate(customers: int, due: int) -> Any:
    """The bench tenant, its 5-step SOP and ``customers`` enrolled customers, in SQL."""
    from django.db import connection, transaction

    from siyu.accounts.models import Role, StaffMember
    from siyu.core.services import tenant_create
    from siyu.core.tenancy import tenant_context
    from siyu.customers.lifecycle import stages
    from siyu.sop.models import SopStep
    from siyu.sop.services import sop_activate, sop_create
    from siyu.tags.models import Tag, TagGroup

    tenant = tenant_create(
        slug="bench", name="Bench", corp_id="ww_bench_sop", wecom_base_url="http://127.0.0.1:9/"
    )
    with tenant_context(tenant):
        stages()
        StaffMember.objects.bulk_create(
            StaffMember(tenant=tenant, userid=f"staff{i}", name=f"Staff {i}") for i in range(STAFF)
        )
        boss = StaffMember.objects.create(userid="boss", name="Boss", role=Role.BOSS)
        tag = Tag.objects.create(group=TagGroup.objects.create(name="SOP"), name="已触达")
        day = 24 * 60
        sop = sop_create(
            actor=boss,
            name="新客五步",
            trigger_kind="event",
            trigger={"event_type": "customer.added"},
            steps=[
                {"actions": [{"type": "task", "config": {"title": "打招呼", "body": "欢迎"}}]},
                {
                    "delay_minutes": day,
                    "actions": [{"type": "tag_add", "config": {"tag_ids": [tag.pk]}}],
                },
                {
                    "delay_minutes": day,
                    "actions": [{"type": "task", "config": {"title": "发案例"}}],
                },
                {
                    "delay_minutes": day,
                    "actions": [{"type": "stage", "config": {"stage": "intent"}}],
                },
                {"delay_minutes": day, "actions": [{"type": "task", "config": {"title": "邀约"}}]},
            ],
        )
        sop = sop_activate(actor=boss, sop_id=sop.pk)
        first = SopStep.objects.get(sop=sop, order=1)
    t = tenant.pk
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # no FK triggers in the load
        progress(f"{customers:,} customers")
        cur.execute(
            "INSERT INTO customers_customer (tenant_id, name, avatar, gender, type, corp_name,"
            " stage, attributes, created_at, updated_at)"
            " SELECT %s, 'c' || i, '', i %% 3, 1, '', 'normal', '{}', now(), now()"
            " FROM generate_series(1, %s) i",
            [t, customers],
        )
        cur.execute("SELECT min(id), max(id) FROM customers_customer WHERE tenant_id = %s", [t])
        low, high = cur.fetchone()
        assert high - low + 1 == customers, "customer ids are not contiguous"
        cur.execute("SELECT min(id) FROM accounts_staffmember WHERE tenant_id = %s", [t])
        staff_low = cur.fetchone()[0]
        progress(f"{customers:,} staff relations")
        cur.execute(
            "INSERT INTO customers_staffrelation (tenant_id, customer_id, staff_id,"
            " external_userid, status, remark, description, remark_mobiles, add_way, state,"
            " oper_userid, added_at, delete_source, created_at)"
            " SELECT %s, %s + i, %s + i %% %s, 'wm' || i, 'active', '', '', '[]', 1, '',"
            " '', now() - interval '1 day', '', now()"
            " FROM generate_series(0, %s - 1) i",
            [t, low, staff_low, STAFF, customers],
        )
        progress(f"{customers:,} enrolments ({2 * due:,} due now)")
        cur.execute(
            "INSERT INTO sop_enrollment (tenant_id, sop_id, customer_id, key, step_id,"
            " next_due_at, status, converted, attempts, last_error, enrolled_at)"
            " SELECT %s, %s, %s + i, 'once', %s,"
            " CASE WHEN i < %s THEN now() - interval '1 hour' + i * interval '1 millisecond'"
            " ELSE now() + interval '1 day'"
            " + (i::bigint * 7919 %% (30 * 86400)) * interval '1 second'"
            " END, 'active', false, 0, '', now()"
            " FROM generate_series(0, %s - 1) i",
            [t, sop.pk, low, first.pk, 2 * due, customers],
        )
    with connection.cursor() as cur:
        progress("analyze")
        for table in ("customers_customer", "customers_staffrelation", "sop_enrollment"):
            cur.execute(f"ANALYZE {table}")  # noqa: S608 (constants)
    return tenant


def naive_dispatch(limit: int, tenant: Any) -> int:
    """The baseline: one transaction per due row, the SOP's steps loaded for each."""
    from django.db import transaction
    from django.utils import timezone

    from siyu.core.tenancy import tenant_context
    from siyu.sop import engine
    from siyu.sop.models import Enrollment, Sop

    ids = list(
        Enrollment.unscoped.filter(status="active", next_due_at__lte=timezone.now())
        .order_by("next_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    with tenant_context(tenant):
        for pk in ids:
            with transaction.atomic():
                enrollment = Enrollment.objects.select_for_update().get(pk=pk)
                plan = engine._plan(Sop.objects.get(pk=enrollment.sop_id))
                engine.enrollment_step_run(enrollment=enrollment, plan=plan, now=timezone.now())
    return len(ids)


def batched_dispatch(limit: int, tenant: Any) -> int:
    from siyu.sop.engine import sop_dispatch_batch

    return sop_dispatch_batch(limit=limit)


def throughput(name: str, dispatch: Any, rows: int, tenant: Any) -> float:
    started = time.perf_counter()
    done = 0
    while done < rows:
        step = dispatch(min(200, rows - done), tenant)
        if step == 0:
            break
        done += step
    took = time.perf_counter() - started
    progress(f"{name}: {done:,} steps in {took:.1f} s = {done / took:.0f} steps/s")
    return done / took


# Enrolments no phase has touched yet (still at step 1, not due); the parameter is the count.
UNTOUCHED = (
    "SELECT id, row_number() OVER (ORDER BY id) AS n FROM sop_enrollment"
    " WHERE status = 'active' AND next_due_at > now() + interval '1 hour'"
    " AND attempts = 0 AND NOT EXISTS (SELECT 1 FROM sop_steprun r WHERE r.enrollment_id ="
    " sop_enrollment.id) ORDER BY id LIMIT %s"
)


def paced_lag(name: str, dispatch: Any, rows: int, seconds: float, tenant: Any) -> dict[str, Any]:
    """Make ``rows`` untouched enrolments due uniformly over ``seconds`` from now,
    poll-dispatch them, and read due → run lag from their first step runs. Rows the dispatcher
    could not reach by the deadline are sent back to the future, so the next phase starts
    clean (and they count as not run)."""
    from django.db import connection
    from django.db.models import F

    from siyu.sop.models import StepRun

    with connection.cursor() as cur:
        cur.execute(
            "WITH picked AS (" + UNTOUCHED + ")"  # noqa: S608 (constants)
            " UPDATE sop_enrollment e SET next_due_at = now() + picked.n * %s * interval '1 second'"
            " FROM picked WHERE e.id = picked.id RETURNING e.id",
            [rows, seconds / rows],
        )
        ids = [row[0] for row in cur.fetchall()]
    started = time.perf_counter()
    deadline = started + seconds * 3 + 30
    done = 0
    while done < rows and time.perf_counter() < deadline:
        step = dispatch(200, tenant)
        done += step
        if step == 0:
            time.sleep(0.2)
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE sop_enrollment SET next_due_at = now() + interval '2 days'"
            " WHERE id = ANY(%s) AND next_due_at <= now() + interval '1 hour'"
            " AND NOT EXISTS (SELECT 1 FROM sop_steprun r"
            " WHERE r.enrollment_id = sop_enrollment.id)",
            [ids],
        )
    lags = [
        lag.total_seconds()
        for lag in StepRun.unscoped.filter(enrollment_id__in=ids)
        .annotate(lag=F("ran_at") - F("due_at"))
        .values_list("lag", flat=True)
    ]
    result = {
        "rows": rows,
        "ran": len(lags),
        "rate": rows / seconds,
        "p50": percentile(lags, 50),
        "p99": percentile(lags, 99),
        "max": max(lags) if lags else float("nan"),
    }
    progress(
        f"{name} lag at {result['rate']:.0f}/s: ran {len(lags):,}/{rows:,}, p50 "
        f"{result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms"
    )
    return result


def concurrent_check(rows: int, tenant: Any) -> tuple[int, int]:
    """Two batched dispatchers at once on the same due rows: SKIP LOCKED splits them."""
    from django.db import connection

    from siyu.sop.engine import sop_dispatch_batch
    from siyu.sop.models import StepRun

    with connection.cursor() as cur:
        cur.execute(
            "WITH picked AS (" + UNTOUCHED + ")"  # noqa: S608 (constants)
            " UPDATE sop_enrollment e SET next_due_at = now() - interval '1 second'"
            " FROM picked WHERE e.id = picked.id",
            [rows],
        )
    before = StepRun.unscoped.count()
    counts = [0, 0]

    def work(slot: int) -> None:
        try:
            while (done := sop_dispatch_batch(limit=100)) > 0:
                counts[slot] += done
        finally:
            from django.db import connection as own

            own.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), StepRun.unscoped.count() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1000, help="due rows per throughput phase")
    parser.add_argument("--paced", type=int, default=300, help="rows per lag phase")
    parser.add_argument("--seconds", type=float, default=0, help="lag phase length (0: auto)")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    args = parser.parse_args()

    begun = time.perf_counter()
    ensure_database(args.database_url, fresh=True)
    setup_django(args.database_url)
    from django.db import connection, transaction
    from django.utils import timezone

    from siyu.sop import engine

    started = time.perf_counter()
    tenant = generate(args.customers, args.due)
    generated = time.perf_counter() - started
    progress(f"generated in {generated:.0f} s")

    claims = []
    for _ in range(30):
        with transaction.atomic():
            t0 = time.perf_counter()
            engine._claim(200, timezone.now())
            claims.append((time.perf_counter() - t0) * 1000)
            transaction.set_rollback(True)
    progress(f"claim of 200 among {args.customers:,} active: p50 {percentile(claims, 50):.1f} ms")

    naive = throughput("per-row", naive_dispatch, args.due, tenant)
    batched = throughput("batched", batched_dispatch, args.due, tenant)
    seconds = args.seconds or max(20.0, args.paced / (batched / 2))
    naive_lag = paced_lag("per-row", naive_dispatch, args.paced, seconds, tenant)
    batched_lag = paced_lag("batched", batched_dispatch, args.paced, seconds, tenant)
    dispatched, runs = concurrent_check(400, tenant)
    progress(f"two concurrent dispatchers: {dispatched} dispatched, {runs} step runs")
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT enrollment_id, step_id FROM sop_steprun"
            " GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        duplicates = cur.fetchone()[0]
        cur.execute("SELECT version()")
        pg = cur.fetchone()[0].split(",")[0]

    print()
    print(
        f"| {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {pg} | |"
    )
    print("| --- | --- |")
    print(
        f"| command | `python bench/sop_engine.py --customers {args.customers} --due {args.due} "
        f"--paced {args.paced}` |"
    )
    print(
        f"| data generation | {generated:.0f} s ({args.customers:,} customers, relations and "
        "active enrolments in one 5-step SOP) |"
    )
    print(
        f"| claim (200 due rows, FOR UPDATE SKIP LOCKED) | p50 {percentile(claims, 50):.1f} ms, "
        f"p99 {percentile(claims, 99):.1f} ms |"
    )
    print(f"| per-row dispatch (baseline) | {naive:.0f} steps/s |")
    print(f"| **batched claim** | **{batched:.0f} steps/s** |")
    print(f"| ratio | batched / per-row = {batched / naive:.2f}× |")
    for name, lag in (("per-row", naive_lag), ("batched", batched_lag)):
        print(
            f"| lag, {name} ({lag['rows']:,} due over {seconds:.0f} s = {lag['rate']:.0f}/s)"
            f" | ran {lag['ran']:,}; p50 {lag['p50'] * 1000:.0f} ms, p99 {lag['p99'] * 1000:.0f}"
            f" ms, max {lag['max'] * 1000:.0f} ms |"
        )
    print(
        f"| two concurrent batched dispatchers | {dispatched:,} dispatched, {runs:,} step runs,"
        f" {duplicates} duplicate (enrollment, step) pairs |"
    )
    print(f"| total runtime | {time.perf_counter() - begun:.0f} s |")


if __name__ == "__main__":
    main()
