"""Mass-send planning benchmark: the set-based plan against a per-customer plan, same run.

Generates N customers (default 1,000,000) in a dedicated PostgreSQL database
(``siyu_bench_masssend``) with ``INSERT … SELECT generate_series``: one staff relation each
(200 members), 1 in 20 deleted by the customer, 1 in 50 customers with no relation at all, and
1 in 100 who already received a company mass send today (the rule is set to one per day, so
they are at their cap). Then, in one process:

- ``plan`` (what the preview and the dispatcher run): the audience, the relations and the
  capped customers in three set-based queries, resolved in memory;
- the same plan written (``mass_send_dispatch``: recipients and outbox batches, one
  transaction);
- a per-customer plan (two queries per customer: their relations, their mass sends received
  in the period) over a sample of ``--sample`` customers, checked to agree with the set-based
  plan, and extrapolated to N.

Usage: ``make bench-masssend`` (``--customers 100000`` for a quicker run). Results:
bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from harness import ROOT, progress

sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/siyu_bench_masssend"
STAFF = 200


def generate(tenant_id: int, customers: int) -> None:
    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (tenant_id, name, avatar, gender, type, corp_name,"
            " stage, attributes, created_at, updated_at)"
            " SELECT %s, 'c' || i, '', 0, 1, '', 'normal', '{}'::jsonb, %s, %s"
            " FROM generate_series(1, %s) AS i",
            [tenant_id, now, now, customers],
        )
        cursor.execute(
            "INSERT INTO customers_staffrelation (tenant_id, customer_id, staff_id,"
            " external_userid, status, remark, description, remark_mobiles, add_way, state,"
            " oper_userid, delete_source, added_at, created_at)"
            " SELECT c.tenant_id, c.id, s.id, 'wm' || c.id,"
            " CASE WHEN c.id %% 20 = 0 THEN 'customer_deleted' ELSE 'active' END,"
            " '', '', '[]'::jsonb, 0, '', '', '', %s - (c.id %% 1000) * interval '1 hour', %s"
            " FROM customers_customer c JOIN accounts_staffmember s"
            " ON s.tenant_id = c.tenant_id AND s.userid = 'b' || ((c.id / 7) %% %s)"
            " WHERE c.tenant_id = %s AND c.id %% 50 <> 1",
            [now, now, STAFF, tenant_id],
        )
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE customers_staffrelation")


def previous_send(actor: object, tenant_id: int) -> None:
    """A mass send delivered today to 1 in 100 customers (their cap under one-per-day)."""
    from django.db import connection
    from django.utils import timezone

    from siyu.masssend.models import MassSend

    send = MassSend.objects.create(
        kind="customers",
        name="earlier",
        audience_kind="upload",
        audience={"customer_ids": []},
        text="earlier",
        status="sent",
        created_by=actor,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO masssend_recipient (tenant_id, mass_send_id, customer_id, staff_id,"
            " target, status, reason, delivered_at)"
            " SELECT r.tenant_id, %s, r.customer_id, r.staff_id, r.external_userid,"
            " 'delivered', '', %s FROM customers_staffrelation r"
            " WHERE r.tenant_id = %s AND r.customer_id %% 100 = 7",
            [send.pk, timezone.now(), tenant_id],
        )
        cursor.execute("ANALYZE masssend_recipient")


def naive_plan(customer_ids: list[int], sendable: set[int]) -> dict[int, tuple[str, str]]:
    """Per customer: their relations, then their deliveries in the period (two queries)."""
    from django.conf import settings
    from django.utils import timezone

    from siyu.customers.models import StaffRelation
    from siyu.masssend.models import Recipient
    from siyu.wecom.client import governor

    start, cap = governor.mass_send_window(settings.SIYU_MASS_SEND_RULE, timezone.now())
    result: dict[int, tuple[str, str]] = {}
    for customer_id in customer_ids:
        relations = list(
            StaffRelation.objects.filter(customer_id=customer_id).values_list(
                "staff_id", "external_userid", "status", "added_at"
            )
        )
        active = [r for r in relations if r[2] == "active" and r[0] in sendable]
        if not active:
            result[customer_id] = ("excluded", "deleted" if relations else "no_relation")
            continue
        received = Recipient.objects.filter(
            customer_id=customer_id, status="delivered", delivered_at__gte=start
        ).count()
        staff_id, ext = max(active, key=lambda r: (r[3], r[0]))[:2]
        result[customer_id] = ("excluded", "cap") if received >= cap else ("receiving", ext)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()

    from bench.harness import fresh_siyu

    workdir = ROOT / "var" / "bench-masssend"
    workdir.mkdir(parents=True, exist_ok=True)
    progress(f"fresh database {args.database_url}")
    fresh_siyu(workdir, args.database_url, "memory://")
    from django.conf import settings

    settings.SIYU_MASS_SEND_RULE = "one_per_day"
    from siyu.accounts.models import Role
    from siyu.accounts.services import department_upsert, staff_upsert
    from siyu.core.services import tenant_create
    from siyu.core.tenancy import tenant_context
    from siyu.customers.models import Customer
    from siyu.masssend import services
    from siyu.masssend.models import MassSend, Recipient

    tenant = tenant_create(slug="bench", name="Bench", corp_id="ww_bench_masssend")
    with tenant_context(tenant):
        department_upsert(wecom_id=1, name="总部")
        members = [
            staff_upsert(userid=f"b{n}", name=f"b{n}", department_wecom_ids=[1])
            for n in range(STAFF)
        ]
        actor = members[0]
        actor.role = Role.ADMIN
        actor.save(update_fields=["role"])
        started = time.perf_counter()
        generate(tenant.pk, args.customers)
        previous_send(actor, tenant.pk)
        generation = time.perf_counter() - started
        progress(f"generated {args.customers:,} customers in {generation:.1f}s")
        audience = {"expression": "stage:normal"}

        started = time.perf_counter()
        planned = services.plan(
            actor=actor, kind="customers", audience_kind="expression", audience=audience
        )
        plan_s = time.perf_counter() - started
        preview = services.preview_of(kind="customers", planned=planned)
        progress(f"set-based plan: {plan_s:.2f}s, {preview.receiving:,} receiving")

        sample = list(Customer.objects.order_by("pk").values_list("pk", flat=True)[: args.sample])
        sendable = set(services._senders(actor).values_list("pk", flat=True))
        started = time.perf_counter()
        naive = naive_plan(sample, sendable)
        naive_s = time.perf_counter() - started
        per_customer = naive_s / len(sample)
        wanted = set(sample)
        fast = {c: ("receiving", t) for c, _, t in planned.receiving if c in wanted}
        fast.update({c: ("excluded", r) for c, _, r in planned.excluded if c in wanted})
        assert fast == naive, "the per-customer plan disagrees with the set-based plan"
        progress(f"per-customer plan: {naive_s:.2f}s for {len(sample):,} customers")

        send = MassSend.objects.create(
            kind="customers",
            name="bench",
            audience_kind="expression",
            audience=audience,
            text="bench",
            created_by=actor,
        )
        started = time.perf_counter()
        batch_ids = services.mass_send_dispatch(mass_send_id=send.pk)
        dispatch_s = time.perf_counter() - started
        written = Recipient.objects.filter(mass_send=send).count()
        progress(f"dispatch (plan + write): {dispatch_s:.2f}s, {len(batch_ids)} batches")

    extrapolated = per_customer * args.customers
    cpu = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"machine: {cpu}")
    print(f"customers: {args.customers:,}; receiving {preview.receiving:,}")
    print(f"excluded: { {str(k): v for k, v in preview.excluded.items()} }")
    print(f"set-based plan (preview): {plan_s:.2f} s")
    print(
        f"dispatch (plan + write): {dispatch_s:.2f} s, {written:,} rows, {len(batch_ids)} batches"
    )
    print(
        f"per-customer plan: {naive_s:.2f} s for {len(sample):,} "
        f"({per_customer * 1000:.2f} ms each), {extrapolated:.0f} s for {args.customers:,}"
    )
    print(f"ratio per-customer / set-based plan: {extrapolated / plan_s:.0f}x")


if __name__ == "__main__":
    main()
