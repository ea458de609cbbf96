"""Dashboards benchmark: page data from the rollups vs the same numbers from raw events, and the
incremental refresh after a day of new events.

The issue's scale is 10,000,000 customers and 200,000,000 events. Writing 200M event rows does
not fit the time budget, so a dedicated PostgreSQL database (``siyu_bench_dashboards``) gets, with
INSERT … SELECT generate_series:

- the rollups 200M events over ``--days`` (1,095: three years) would have produced — one
  ``CustomerTrack`` per customer (10M), ``MetricDay`` cells for every day × member (200) ×
  source (3 channel codes each) × metric (18), content and mass-send subject cells,
  ``MetricMonth`` balances summed from them, weekly and monthly ``CohortCell`` rows;
- raw events for the last ``--raw-days`` (7) days at 200M / 1,095 ≈ 183k events a day: the
  baseline computes the funnel and channel panels' numbers from them (a lower bound: raw
  computation of "first time reached" would need more);
- one more day of new events (today) with pending ``dashboards.rollup`` deliveries.

Then, in one process: p50/p99 of each role's page data (every panel of the boss, operations,
manager and staff dashboards for the last 30 days), the baseline from raw events, and the
incremental refresh: ``--process`` of today's deliveries run through the real delivery path
(``event_delivery_run`` → subscriber → increments), timed and extrapolated to the whole day.

Usage: ``make bench-dashboards`` (``--customers 1000000`` for a quicker run; the data is reused
when the database already holds it, ``--regenerate`` to rebuild). Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from harness import ensure_database, percentile, progress, setup_django

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/siyu_bench_dashboards"
STAFF = 200
DEPARTMENTS = 10
SOURCES_PER_STAFF = 3
CHANNELS = 60
EVENTS = 200_000_000
# MetricDay metrics with their mean value per cell (10M customers over 3 years).
METRICS = [
    ("adds", 16),
    ("deletes", 2),
    ("new_customers", 15),
    ("customers", 13),
    ("lost_customers", 2),
    ("returned_customers", 0),
    ("active", 40),
    ("stage:normal", 9),
    ("stage:intent", 2),
    ("stage:paid", 1),
    ("funnel:added", 15),
    ("funnel:engaged", 8),
    ("funnel:intent", 4),
    ("funnel:paid", 2),
    ("funnel:repeat", 1),
    ("gmv_fen", 30000),
    ("orders", 3),
    ("refund_fen", 500),
]
# Raw event mix of a day: (type, share in %).
MIX = [
    ("content.opened", 60),
    ("masssend.sent", 15),
    ("shop.product_viewed", 10),
    ("order.paid", 6),
    ("customer.added", 5),
    ("customer.stage_changed", 3),
    ("order.refunded", 1),
]
BULK_TABLES = ("dashboards_metricday", "dashboards_cohortcell", "dashboards_customertrack")


def generate(cur: Any, customers: int, days: int) -> dict[str, int]:
    """(Re)create the bench tenant's rollups, in SQL."""
    from django.db import transaction
    from django.utils import timezone

    from siyu.accounts.models import Department, Role, StaffMember
    from siyu.core.models import Tenant
    from siyu.core.services import tenant_create
    from siyu.core.tenancy import tenant_context
    from siyu.customers.lifecycle import stages

    Tenant.objects.filter(slug="bench").delete()
    for table in (*BULK_TABLES, "dashboards_metricmonth", "core_eventdelivery", "core_event"):
        cur.execute(f"TRUNCATE {table} CASCADE")  # noqa: S608 (constants)
    tenant = tenant_create(slug="bench", name="Bench", corp_id="ww_bench_dashboards")
    today = timezone.localdate()
    first = today - timedelta(days=days)
    with tenant_context(tenant):
        stages()
        depts = Department.objects.bulk_create(
            Department(tenant=tenant, wecom_id=i + 1, name=f"D{i}") for i in range(DEPARTMENTS)
        )
        roles = {0: Role.BOSS, 1: Role.OPERATIONS, 2: Role.MANAGER}
        staff = StaffMember.objects.bulk_create(
            StaffMember(
                tenant=tenant,
                userid=f"staff{i}",
                name=f"Staff {i}",
                role=roles.get(i, Role.STAFF),
                main_department=depts[i % DEPARTMENTS],
            )
            for i in range(STAFF)
        )
        through = StaffMember.departments.through
        through.objects.bulk_create(
            through(staffmember_id=m.pk, department_id=m.main_department_id) for m in staff
        )
    t, s0 = tenant.pk, min(m.pk for m in staff)
    counts: dict[str, int] = {}
    with transaction.atomic():
        cur.execute("SET LOCAL session_replication_role = replica")
        saved = _drop_indexes(cur)
        progress(f"{customers:,} customer tracks")
        cur.execute(
            "INSERT INTO dashboards_customertrack (tenant_id, customer_id, staff_id, source_kind,"
            " source_id, added_on, stage, relations, engaged_on, intent_on, paid_on, repeat_on,"
            " last_active_on, last_paid_on, paid_orders)"
            " SELECT %(t)s, g, %(s0)s + g %% %(S)s, 'ch',"
            " (((g %% %(S)s) * 3 + (g / %(S)s) %% 3) %% %(C)s)::text, added,"
            " CASE WHEN g %% 20 = 0 THEN 'repeat' WHEN g %% 10 = 0 THEN 'paid'"
            "      WHEN g %% 4 = 0 THEN 'intent' ELSE 'normal' END,"
            " CASE WHEN g %% 9 = 0 THEN 0 ELSE 1 END,"
            " CASE WHEN g %% 2 = 0 THEN added + 1 END, CASE WHEN g %% 4 = 0 THEN added + 2 END,"
            " CASE WHEN g %% 10 = 0 THEN added + 3 END, CASE WHEN g %% 20 = 0 THEN added + 30 END,"
            " LEAST(added + g %% 120, %(last)s),"
            " CASE WHEN g %% 10 = 0 THEN LEAST(added + 3 + g %% 60, %(last)s) END,"
            " CASE WHEN g %% 20 = 0 THEN 2 WHEN g %% 10 = 0 THEN 1 ELSE 0 END"
            " FROM (SELECT g, %(first)s::date + (g::bigint * %(D)s / %(N)s)::int AS added"
            "       FROM generate_series(1, %(N)s) g) x",
            {
                "t": t,
                "s0": s0,
                "S": STAFF,
                "C": CHANNELS,
                "N": customers,
                "D": days - 1,
                "first": first,
                "last": today - timedelta(days=1),
            },
        )
        counts["tracks"] = cur.rowcount
        scale = customers / 10_000_000
        metrics = ", ".join(
            f"('{name}', {max(0, round(mean * scale))}, {k})"
            for k, (name, mean) in enumerate(METRICS)
        )
        progress("metric-day cells")
        cur.execute(
            "INSERT INTO dashboards_metricday"  # noqa: S608 (constants)
            " (tenant_id, day, staff_id, source_kind, source_id, metric, subject, value)"
            " SELECT %(t)s, %(first)s::date + d, %(s0)s + s, 'ch', ((s * 3 + j) %% %(C)s)::text,"
            " m.name, '', (d * 7919 + s * 104729 + j * 31 + m.k * 17) %% (2 * m.mean + 1)"
            " FROM generate_series(0, %(D)s - 1) d, generate_series(0, %(S)s - 1) s,"
            f" generate_series(0, {SOURCES_PER_STAFF - 1}) j, (VALUES {metrics}) m(name, mean, k)",
            {"t": t, "first": first, "s0": s0, "C": CHANNELS, "D": days, "S": STAFF},
        )
        counts["metric_days"] = cur.rowcount
        progress("content and mass-send subject cells")
        cur.execute(
            "INSERT INTO dashboards_metricday (tenant_id, day, staff_id, source_kind, source_id,"
            " metric, subject, value)"
            " SELECT %(t)s, %(first)s::date + d, %(s0)s + s, 'ch', ((s * 3) %% %(C)s)::text,"
            " m.name, m.prefix || ((d + s) %% m.n), (d * 31 + s) %% 40"
            " FROM generate_series(0, %(D)s - 1) d, generate_series(0, %(S)s - 1) s,"
            " (VALUES ('content.opened', 'content:', 200), ('content.read', 'content:', 200),"
            "         ('masssend.sent', 'masssend:', 50)) m(name, prefix, n)",
            {"t": t, "first": first, "s0": s0, "C": CHANNELS, "D": days, "S": STAFF},
        )
        counts["metric_days"] += cur.rowcount
        progress("cohort cells")
        week = "date_trunc('week', %(first)s::date)::date + p * 7"
        month = "(date_trunc('month', %(first)s::date) + p * interval '1 month')::date"
        for grain, period, count, offsets in (
            ("week", week, days // 7, 26),
            ("month", month, days // 30, 13),
        ):
            cur.execute(
                "INSERT INTO dashboards_cohortcell"  # noqa: S608 (constants)
                ' (tenant_id, grain, period, staff_id, source_kind, source_id, "offset",'
                " size, lost)"
                f" SELECT %(t)s, %(grain)s, {period}, %(s0)s + s, 'ch',"
                " ((s * 3 + j) %% %(C)s)::text, o,"
                " CASE WHEN o = 0 THEN 20 + (p + s) %% 30 ELSE 0 END, (p + s + o) %% 3"
                " FROM generate_series(0, %(P)s - 1) p, generate_series(0, %(S)s - 1) s,"
                f" generate_series(0, {SOURCES_PER_STAFF - 1}) j,"
                " generate_series(0, %(O)s - 1) o WHERE p + o < %(P)s",
                {
                    "t": t,
                    "grain": grain,
                    "first": first,
                    "s0": s0,
                    "C": CHANNELS,
                    "P": count,
                    "S": STAFF,
                    "O": offsets,
                },
            )
        progress("recreating indexes")
        _restore_indexes(cur, saved)
        cur.execute(
            "INSERT INTO dashboards_metricmonth (tenant_id, month, staff_id, source_kind,"
            " source_id, metric, value)"
            " SELECT tenant_id, date_trunc('month', day)::date, staff_id, source_kind, source_id,"
            " metric, sum(value) FROM dashboards_metricday"
            " WHERE tenant_id = %s AND (metric = 'customers' OR metric LIKE 'stage:%%')"
            " GROUP BY 1, 2, 3, 4, 5, 6",
            [t],
        )
    return counts


def generate_events(
    cur: Any, tenant: Any, customers: int, days: int, raw_days: int, events: int
) -> dict[str, int]:
    """Raw events of the last ``raw_days`` days, and today's with pending rollup deliveries."""
    from django.utils import timezone

    t, today = tenant.pk, timezone.localdate()
    cur.execute("DELETE FROM core_eventdelivery WHERE tenant_id = %s", [t])
    cur.execute("DELETE FROM core_event WHERE tenant_id = %s", [t])
    cur.execute("SELECT min(id) FROM accounts_staffmember WHERE tenant_id = %s", [t])
    s0 = cur.fetchone()[0]
    per_day = events // days
    progress(f"raw events: {raw_days} days × {per_day:,}")
    raw = _events(
        cur, t, s0, customers, today - timedelta(days=raw_days), raw_days * per_day, per_day
    )
    progress(f"today's new events: {per_day:,} with their deliveries")
    _events(cur, t, s0, customers, today, per_day, per_day)
    cur.execute(
        "INSERT INTO core_eventdelivery (tenant_id, event_id, subscriber, status, attempts,"
        " next_attempt_at, last_error, created_at)"
        " SELECT tenant_id, id, 'dashboards.rollup', 'pending', 0, now(), '', now()"
        " FROM core_event WHERE tenant_id = %s AND occurred_at >= %s",
        [t, _local_midnight(today)],
    )
    for table in (*BULK_TABLES, "dashboards_metricmonth", "core_event", "core_eventdelivery"):
        cur.execute(f"VACUUM ANALYZE {table}")  # noqa: S608 (constants; index-only scans)
    cur.execute("SELECT count(*) FROM dashboards_cohortcell WHERE tenant_id = %s", [t])
    return {"raw_events": raw, "today_events": per_day, "cohort_cells": cur.fetchone()[0]}


def _local_midnight(day: date) -> datetime:
    from django.utils import timezone

    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _events(
    cur: Any, t: int, s0: int, customers: int, first: date, count: int, per_day: int
) -> int:
    """``count`` events of the day mix from ``first`` on, ``per_day`` a day, spread over each
    day's seconds, on existing customers."""
    cases, low = [], 0
    for name, share in MIX:
        cases.append(f"WHEN e %% 100 < {low + share} THEN '{name}'")
        low += share
    cur.execute(
        "INSERT INTO core_event"  # noqa: S608 (constants)
        " (tenant_id, customer_id, type, payload, occurred_at, recorded_at, source)"
        f" SELECT %(t)s, 1 + (e::bigint * 104729) %% %(N)s, CASE {' '.join(cases)} END,"
        " jsonb_build_object('amount_fen', 5000 + e %% 20000, 'staff_id', %(s0)s + e %% %(S)s,"
        " 'staff_userid', 'staff' || (e %% %(S)s), 'state', 'ch:' || (e %% %(C)s),"
        " 'add_way', 1, 'external_userid', 'wm' || e, 'from', 'normal', 'to', 'intent',"
        " 'item_id', e %% 200, 'title', 'c', 'mass_send_id', e %% 50, 'paid_orders', 1,"
        " 'order_id', e),"
        " %(start)s + (e / %(per_day)s) * interval '1 day'"
        "   + ((e %% %(per_day)s)::bigint * 86399 / %(per_day)s) * interval '1 second',"
        " now(), 'import'"
        " FROM generate_series(0, %(count)s - 1) e",
        {
            "t": t,
            "N": customers,
            "s0": s0,
            "S": STAFF,
            "C": CHANNELS,
            "start": _local_midnight(first),
            "per_day": per_day,
            "count": count,
        },
    )
    return int(cur.rowcount)


def _drop_indexes(cur: Any) -> list[tuple[str, str, str, bool]]:
    saved = []
    for table in BULK_TABLES:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT LIKE '%%_pkey'",
            [table],
        )
        for name, definition in cur.fetchall():
            cur.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", [name])
            is_constraint = cur.fetchone() is not None
            saved.append((table, name, definition, is_constraint))
            if is_constraint:
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            else:
                cur.execute(f'DROP INDEX "{name}"')
    return saved


def _restore_indexes(cur: Any, saved: list[tuple[str, str, str, bool]]) -> None:
    for table, name, definition, is_constraint in saved:
        if is_constraint:
            columns = definition[definition.index("(") :]
            cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" UNIQUE {columns}')
        else:
            cur.execute(definition)  # partial unique indexes come back as they were


def timed(func: Callable[[], object], runs: int) -> list[float]:
    result = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        result.append((time.perf_counter() - started) * 1000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--raw-days", type=int, default=7)
    parser.add_argument("--events", type=int, default=EVENTS, help="events the history stands for")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--process", type=int, default=20_000, help="deliveries to time")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.db import connection
    from django.utils import timezone

    from siyu.accounts.models import StaffMember
    from siyu.core.models import DeliveryStatus, EventDelivery, Tenant
    from siyu.core.services import event_delivery_run
    from siyu.core.tenancy import tenant_context
    from siyu.dashboards import selectors
    from siyu.dashboards.models import CustomerTrack

    tenant = Tenant.objects.filter(slug="bench").first()
    existing = 0
    if tenant is not None:
        with tenant_context(tenant):
            existing = CustomerTrack.objects.count()
    counts: dict[str, int] = {}
    if args.regenerate or existing != args.customers:
        started = time.perf_counter()
        with connection.cursor() as cur:
            counts = generate(cur, args.customers, args.days)
        counts["generation_s"] = round(time.perf_counter() - started)
        progress(f"generation took {counts['generation_s']} s: {counts}")
        tenant = Tenant.objects.get(slug="bench")
    assert tenant is not None
    # Fresh raw events every run: the incremental refresh consumes today's deliveries.
    started = time.perf_counter()
    with connection.cursor() as cur:
        counts |= generate_events(
            cur, tenant, args.customers, args.days, args.raw_days, args.events
        )
    counts["events_s"] = round(time.perf_counter() - started)
    today = timezone.localdate()
    filters = selectors.parse_filters(
        start=today - timedelta(days=30), end=today - timedelta(days=1)
    )
    pages: dict[str, dict[str, list[float]]] = {}
    with tenant_context(tenant):
        members = {
            m.role: m
            for m in StaffMember.objects.filter(userid__in=["staff0", "staff1", "staff2", "staff3"])
        }
        for role, member in (
            ("boss", members["boss"]),
            ("operations", members["operations"]),
            ("manager", members["manager"]),
            ("staff", members["staff"]),
        ):
            keys = selectors.ROLE_PANELS[role]
            for key in keys:
                selectors.panel(member, key, filters)  # warm the cache once
            per_panel = {
                key: timed(lambda k=key, m=member: selectors.panel(m, k, filters), args.runs)
                for key in keys
            }
            per_panel["(page)"] = [sum(runs) for runs in zip(*per_panel.values(), strict=True)]
            pages[role] = per_panel
            progress(f"{role}: page p50 {statistics.median(per_panel['(page)']):.0f} ms")

        boss = members["boss"]
        # The same range for both: the days that exist as raw events.
        raw = selectors.parse_filters(
            start=today - timedelta(days=args.raw_days), end=today - timedelta(days=1)
        )
        rollup_ms = [
            a + b
            for a, b in zip(
                timed(lambda: selectors.panel(boss, "funnel", raw), args.runs),
                timed(lambda: selectors.panel(boss, "channels", raw), args.runs),
                strict=True,
            )
        ]
        progress("baseline from raw events")
        sql = (
            "SELECT (e.occurred_at AT TIME ZONE 'Asia/Shanghai')::date, e.type, t.source_kind,"
            " t.source_id, count(*), sum(coalesce((e.payload->>'amount_fen')::bigint, 0))"
            " FROM core_event e JOIN dashboards_customertrack t"
            "   ON t.tenant_id = e.tenant_id AND t.customer_id = e.customer_id"
            " WHERE e.tenant_id = %s AND e.occurred_at >= %s AND e.occurred_at < %s"
            " GROUP BY 1, 2, 3, 4"
        )

        def baseline() -> None:
            with connection.cursor() as cur:
                cur.execute(
                    sql, [tenant.pk, _local_midnight(filters.start), _local_midnight(today)]
                )
                cur.fetchall()

        baseline_ms = timed(baseline, args.baseline_runs)

        pending = list(
            EventDelivery.objects.filter(
                subscriber="dashboards.rollup", status=DeliveryStatus.PENDING
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        day_events = len(pending)
        progress(f"incremental: {min(args.process, day_events):,} of {day_events:,} deliveries")
        started = time.perf_counter()
        for pk in pending[: args.process]:
            event_delivery_run(delivery_id=pk)
        refresh_s = time.perf_counter() - started
        processed = min(args.process, day_events)

    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    python = platform.python_version()
    print(f"date:        {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine:     {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    print(f"database:    PostgreSQL {pg_version}")
    print(f"command:     python bench/dashboards.py --customers {args.customers}")
    if counts:
        print(f"generated:   {counts}")
    print("page data (last 30 days, every panel of the role's dashboard), ms:")
    for role, per_panel in pages.items():
        detail = ", ".join(
            f"{k} {statistics.median(v):.0f}" for k, v in per_panel.items() if k != "(page)"
        )
        page = per_panel["(page)"]
        p50, p99 = percentile(page, 50), percentile(page, 99)
        print(f"  {role:<11} p50 {p50:.0f}  p99 {p99:.0f}  ({detail})")
    r50, b50 = percentile(rollup_ms, 50), percentile(baseline_ms, 50)
    print(f"funnel+channels, last {args.raw_days} days, from rollups: p50 {r50:.1f} ms")
    print(f"same numbers from raw events: p50 {b50:.0f} ms ({args.baseline_runs} runs)")
    print(f"ratio:       raw/rollup at p50 = {b50 / r50:.0f}×")
    rate = processed / refresh_s
    print(f"incremental: {processed:,} deliveries in {refresh_s:.1f} s = {rate:.0f} events/s")
    print(f"             (one worker); a day of {day_events:,} ≈ {day_events / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
