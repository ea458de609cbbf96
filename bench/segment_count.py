"""Segment count benchmark: the bitmap index against the compiled SQL, same data, same run.

Generates N synthetic customers (default 10,000,000) with one staff relation each (added over
the last three years) and ~3.4 tags each (~34M CustomerTag rows: tag k is on 1/(2k) of the
customers — a few tags on millions, hundreds on ~10k) in a dedicated PostgreSQL database, with
INSERT … SELECT generate_series so it takes minutes, not hours. Then, in one process:

- builds the bitmap index from the tables (time, serialized bitmap size, process RSS growth);
- counts a three-tag boolean plus a date filter ``--runs`` times through the index
  (``segment_count(engine="bitmap")``: parse, resolve names, catch up on the event log,
  evaluate) and ``--sql-runs`` times through the compiler's SQL (``engine="sql"``);
- prints p50/p99 of both and their ratio, plus the evaluation time alone.

Usage: ``make bench-segments`` (``--customers 1000000`` for a quicker run; the data is reused
when the database already holds that many customers). Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime
from pathlib import Path

from harness import ensure_database, percentile, progress, setup_django

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/siyu_bench_segments"
TAGS = 500
STAFF = 200
EXPRESSION = 'tag:"T002" and tag:"T003" and not tag:"T004" and added_within:90d'
# Tables loaded in bulk: their indexes are dropped for the load and recreated afterwards.
BULK_TABLES = ("customers_customer", "customers_staffrelation", "tags_customertag")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(customers: int) -> None:
    """(Re)create the bench tenant with ``customers`` customers, in SQL."""
    from django.db import connection, transaction

    from siyu.accounts.models import StaffMember
    from siyu.core.models import Tenant
    from siyu.core.services import tenant_create
    from siyu.core.tenancy import tenant_context
    from siyu.customers.lifecycle import stages
    from siyu.tags.models import Tag, TagGroup

    Tenant.objects.filter(slug="bench").delete()
    with connection.cursor() as cur:
        for table in BULK_TABLES:
            cur.execute(f"TRUNCATE {table} CASCADE")  # noqa: S608 (constants)
    tenant = tenant_create(slug="bench", name="Bench", corp_id="ww_bench_segments")
    with tenant_context(tenant):
        stages()
    t = tenant.pk
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # no FK triggers in the load
        saved = []
        for table in BULK_TABLES:
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                "AND indexname NOT LIKE '%%_pkey'",
                [table],
            )
            for name, definition in cur.fetchall():
                cur.execute(
                    "SELECT conname FROM pg_constraint WHERE conname = %s AND contype = 'u'",
                    [name],
                )
                is_constraint = cur.fetchone() is not None
                saved.append((table, name, definition, is_constraint))
                if is_constraint:
                    cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                else:
                    cur.execute(f'DROP INDEX "{name}"')
        progress(f"staff and {TAGS} tags")
        with tenant_context(tenant):
            # Small tables through the ORM, so their defaults stay the models' business.
            StaffMember.objects.bulk_create(
                StaffMember(tenant=tenant, userid=f"staff{i}", name=f"Staff {i}")
                for i in range(STAFF)
            )
            group = TagGroup.objects.create(name="兴趣")
            Tag.objects.bulk_create(
                Tag(tenant=tenant, group=group, name=f"T{k:03d}") for k in range(1, TAGS + 1)
            )
        progress(f"{customers:,} customers")
        cur.execute(
            "INSERT INTO customers_customer (tenant_id, name, avatar, gender, type, corp_name,"
            " stage, attributes, created_at, updated_at)"
            " SELECT %s, 'c' || i, '', i %% 3, 1, '',"
            " CASE WHEN i %% 50 = 0 THEN 'agent' WHEN i %% 17 = 0 THEN 'repeat'"
            "      WHEN i %% 8 = 0 THEN 'paid' WHEN i %% 5 = 0 THEN 'intent' ELSE 'normal' END,"
            " '{}', now() - interval '3 years' + i * interval '9 seconds', now()"
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
            " SELECT %s, %s + i, %s + (i::bigint * 7919) %% %s, 'wm' || i,"
            " CASE WHEN i %% 9 = 0 THEN 'customer_deleted' ELSE 'active' END, '', '', '[]', 1, '',"
            " '', now() - (i::bigint * 104729 %% (3 * 365 * 86400)) * interval '1 second',"
            " '', now()"
            " FROM generate_series(0, %s - 1) i",
            [t, low, staff_low, STAFF, customers],
        )
        tag_low = Tag.unscoped.filter(tenant=tenant, name="T001").get().pk
        primes = [1_000_003, 1_000_033, 1_000_037, 1_000_039, 1_000_081, 1_000_099, 1_000_117]
        total = 0
        for k in range(1, TAGS + 1):
            # Tag k on customers/(2k) distinct customers: i·p + offset mod N is a bijection.
            size = max(1, customers // (2 * k))
            prime = primes[k % len(primes)]
            cur.execute(
                "INSERT INTO tags_customertag (tenant_id, customer_id, tag_id, staff_id, source,"
                " applied_at) SELECT %s, %s + (i::bigint * %s + %s) %% %s, %s, NULL, 'bench', now()"
                " FROM generate_series(0, %s - 1) i",
                [t, low, prime, k * 104_729, customers, tag_low + k - 1, size],
            )
            total += size
            if k in (1, 10, 100, TAGS):
                progress(f"tag {k}: {total:,} assignments so far")
        progress("recreating indexes")
        for table, name, definition, is_constraint in saved:
            if is_constraint:
                columns = definition[definition.index("(") :]
                cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" UNIQUE {columns}')
            else:
                cur.execute(definition)
    with connection.cursor() as cur:
        progress("analyze")
        for table in BULK_TABLES:
            cur.execute(f"ANALYZE {table}")
    progress(f"generated: {customers:,} customers, {total:,} tag assignments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sql-runs", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.db import connection

    from siyu.core.models import Tenant
    from siyu.core.tenancy import tenant_context
    from siyu.customers.models import Customer
    from siyu.segments.compiler import bind
    from siyu.segments.index import segment_index
    from siyu.segments.selectors import segment_count
    from siyu.tags.models import CustomerTag

    tenant = Tenant.objects.filter(slug="bench").first()
    existing = 0
    if tenant is not None:
        with tenant_context(tenant):
            existing = Customer.objects.count()
    if args.regenerate or existing != args.customers:
        started = time.perf_counter()
        generate(args.customers)
        progress(f"generation took {time.perf_counter() - started:.0f} s")
        tenant = Tenant.objects.get(slug="bench")

    assert tenant is not None
    with tenant_context(tenant):
        assignments = CustomerTag.objects.count()
        progress("building the index")
        rss_before = rss_mb()
        index = segment_index()
        rss_after = rss_mb()
        progress(f"built in {index.build_seconds:.1f} s")

        bitmap_ms = []
        for _ in range(args.runs):
            result = segment_count(expression=EXPRESSION, engine="bitmap")
            bitmap_ms.append(result.took_ms)
        bound = bind(EXPRESSION)
        eval_ms = []
        for _ in range(args.runs):
            started = time.perf_counter()
            index.evaluate(bound)
            eval_ms.append((time.perf_counter() - started) * 1000)
        progress(f"bitmap count = {result.count:,}; now SQL ×{args.sql_runs}")
        sql_ms = []
        for _ in range(args.sql_runs):
            sql = segment_count(expression=EXPRESSION, engine="sql")
            sql_ms.append(sql.took_ms)
        assert sql.count == result.count, f"engines disagree: {sql.count} vs {result.count}"

    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    b50, b99 = percentile(bitmap_ms, 50), percentile(bitmap_ms, 99)
    s50, s99 = percentile(sql_ms, 50), percentile(sql_ms, 99)
    print(f"date:        {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"machine:     {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL {pg_version}"
    )
    print(f"command:     python bench/segment_count.py --customers {args.customers}")
    print(
        f"data:        {args.customers:,} customers, {assignments:,} tag assignments, "
        f"{TAGS} tags, {STAFF} staff"
    )
    print(f"expression:  {EXPRESSION}  → {result.count:,} customers")
    print(
        f"index build: {index.build_seconds:.1f} s; bitmaps {index.memory_bytes() / 2**20:.0f} MiB"
        f" (roaring size); process RSS +{rss_after - rss_before:.0f} MiB"
    )
    print(
        f"bitmap:      p50 {b50:.2f} ms  p99 {b99:.2f} ms  ({args.runs} runs; evaluation alone "
        f"p50 {statistics.median(eval_ms):.2f} ms)"
    )
    print(f"sql:         p50 {s50:.0f} ms  p99 {s99:.0f} ms  ({args.sql_runs} runs)")
    print(f"ratio:       sql/bitmap at p50 = {s50 / b50:.0f}×")


if __name__ == "__main__":
    main()
