"""The dashboard rollups: relation, stage and order events counted per day, member, source and
metric by the subscriber (once per event), the rebuild recomputing the same, and the panels
reading them within filters and data scopes."""

from datetime import date
from typing import Any

from django.core.management import call_command

from siyu.analytics.tests.helpers import add, at, delete
from siyu.core.models import EventDelivery
from siyu.core.services import event_delivery_run
from siyu.customers.models import StaffRelation
from siyu.dashboards.models import CohortCell, CustomerTrack, MetricDay, MetricMonth
from siyu.dashboards.selectors import panel, parse_filters
from siyu.dashboards.services import rollup_rebuild
from siyu.testing.stories import Company

from .helpers import deliver, record

OCT = parse_filters(start="2026-10-01", end="2026-10-31")


def customer(ext: str) -> int:
    return StaffRelation.objects.get(external_userid=ext).customer_id


def scenario(company: Company) -> dict[str, int]:
    """alice and bob add through 渠道码 5, carol through 裂变活动 3. wm-1 becomes 意向, pays
    twice (the second order makes a 复购) and is refunded part of it; bob's wm-2 leaves."""
    add(company, "alice", "wm-1", "ch:5", at(1))
    add(company, "bob", "wm-2", "ch:5", at(1, 23, 30))
    add(company, "carol", "wm-3", "fx:3:9", at(2))
    ids = {ext: customer(ext) for ext in ("wm-1", "wm-2", "wm-3")}
    alice = company["alice"].pk
    record("customer.stage_changed", ids["wm-1"], at(3), **{"from": "normal", "to": "intent"})
    record(
        "content.opened",
        ids["wm-1"],
        at(3, 11),
        item_id=7,
        title="手册",
        staff_id=alice,
        source="workspace",
        link_id=1,
    )
    record(
        "order.paid",
        ids["wm-1"],
        at(5),
        order_id=1,
        amount_fen=10000,
        staff_id=alice,
        paid_orders=1,
    )
    record(
        "order.paid", ids["wm-1"], at(6), order_id=2, amount_fen=5000, staff_id=alice, paid_orders=2
    )
    record("order.refunded", ids["wm-1"], at(7), order_id=2, amount_fen=2000, staff_id=alice)
    delete(company, "bob", "wm-2", at(8))
    deliver()
    return ids


def cells() -> set[tuple[Any, ...]]:
    return set(
        MetricDay.objects.values_list(
            "day", "staff__userid", "source_kind", "source_id", "metric", "subject", "value"
        )
    )


def totals(rows: list[list[Any]], column: int) -> int:
    return sum(row[column] for row in rows)


def test_events_are_counted_per_day_member_source_and_metric(in_acme: Company) -> None:
    scenario(in_acme)
    got = cells()
    oct1, oct5 = date(2026, 10, 1), date(2026, 10, 5)
    assert (oct1, "alice", "ch", "5", "new_customers", "", 1) in got
    assert (oct1, "bob", "ch", "5", "stage:normal", "", 1) in got
    assert (date(2026, 10, 3), "alice", "ch", "5", "stage:intent", "", 1) in got
    assert (date(2026, 10, 3), "alice", "ch", "5", "content.opened", "content:7", 1) in got
    assert (oct5, "alice", "ch", "5", "gmv_fen", "", 10000) in got
    assert (date(2026, 10, 7), "alice", "ch", "5", "gmv_fen", "", -2000) in got
    assert (date(2026, 10, 8), "bob", "ch", "5", "customers", "", -1) in got

    boss = in_acme["boss"]
    funnel = panel(boss, "funnel", OCT)
    # wm-1 was engaged by the content open (before paying), 意向 by the stage change, paid and
    # repeat by its orders; everyone was added.
    assert funnel.extra["totals"] == {"added": 3, "engaged": 1, "intent": 1, "paid": 1, "repeat": 1}
    assets = panel(boss, "assets", OCT)
    by_day = {row[0]: row for row in assets.rows}
    assert by_day["2026-10-02"][1:5] == [3, 1, 0, 1]  # total, new, lost, net
    assert by_day["2026-10-31"][1] == 2  # wm-2 left on Oct 8
    stages = dict((row[0], row[1]) for row in panel(boss, "stages", OCT).rows)
    assert stages["普通"] == 1 and stages["意向"] == 1  # wm-2 is no longer a customer

    channels = {row[1]: row for row in panel(boss, "channels", OCT).rows}
    assert channels["ch:5"][2:] == [2, 1, 1, 2, 1, 0.5, 2, 13000]
    assert channels["fx:3"][2:] == [1, 0, 1, 1, 0, 0.0, 0, 0]

    ranked = panel(boss, "staff", OCT).rows
    assert [row[1] for row in ranked][:1] == ["alice"]
    assert ranked[0][2:] == [1, 1, 1, 2, 13000]


def test_the_same_event_counts_once(in_acme: Company) -> None:
    ids = scenario(in_acme)
    before = cells()
    for delivery in EventDelivery.objects.filter(subscriber="dashboards.rollup"):
        assert event_delivery_run(delivery_id=delivery.pk) == "skipped"
    # A retried producer writing the same fact again (same idempotency key) is one event.
    for _ in range(2):
        record(
            "order.paid", ids["wm-3"], at(9), key="pay-9", order_id=9, amount_fen=300, paid_orders=1
        )
    assert deliver() == 1
    after = cells()
    assert after - before == {
        (date(2026, 10, 9), "carol", "fx", "3", metric, "", value)
        for metric, value in [
            ("gmv_fen", 300),
            ("orders", 1),
            ("active", 1),
            ("funnel:engaged", 1),
            ("funnel:intent", 1),
            ("funnel:paid", 1),
        ]
    }


def test_rebuild_recomputes_what_the_subscriber_counted(in_acme: Company) -> None:
    scenario(in_acme)
    counted = cells()
    cohorts = set(CohortCell.objects.values_list("grain", "period", "offset", "size", "lost"))
    tracks = set(CustomerTrack.objects.values_list("customer_id", "relations", "paid_orders"))
    months = set(MetricMonth.objects.values_list("month", "staff__userid", "metric", "value"))
    assert (date(2026, 10, 1), "bob", "customers", 0) in months  # joined and left in October
    MetricDay.objects.all().update(value=99)
    call_command("dashboards", "rebuild", "--tenant", "acme")
    assert cells() == counted
    assert (
        set(CohortCell.objects.values_list("grain", "period", "offset", "size", "lost")) == cohorts
    )
    assert (
        set(CustomerTrack.objects.values_list("customer_id", "relations", "paid_orders")) == tracks
    )
    assert set(MetricMonth.objects.values_list("month", "staff__userid", "metric", "value")) == (
        months
    )
    assert rollup_rebuild() == len(counted)


def test_filters_by_date_department_and_channel(in_acme: Company) -> None:
    scenario(in_acme)
    boss = in_acme["boss"]

    def new_customers(**kw: Any) -> int:
        return totals(panel(boss, "assets", parse_filters(**kw)).rows, 2)

    assert new_customers(start="2026-10-01", end="2026-10-31") == 3
    assert new_customers(start="2026-10-02", end="2026-10-31") == 1
    sales = in_acme["manager"].main_department_id
    marketing = in_acme["carol"].main_department_id
    assert new_customers(start="2026-10-01", end="2026-10-31", department=sales) == 2
    assert new_customers(start="2026-10-01", end="2026-10-31", department=marketing) == 1
    assert new_customers(start="2026-10-01", end="2026-10-31", channel="ch:5") == 2
    assert new_customers(start="2026-10-01", end="2026-10-31", channel="fx") == 1
    assert new_customers(start="2026-10-01", end="2026-10-31", channel="ch:6") == 0


def test_data_scope_limits_every_panel(in_acme: Company) -> None:
    scenario(in_acme)

    def staff_names(member: str) -> set[str]:
        return {row[1] for row in panel(in_acme[member], "staff", OCT).rows}

    assert staff_names("boss") == {"alice", "bob", "carol"}
    assert staff_names("manager") == {"alice", "bob"}
    assert staff_names("alice") == {"alice"}
    # A department outside the member's scope narrows to nothing rather than widening.
    marketing = in_acme["carol"].main_department_id
    outside = parse_filters(start="2026-10-01", end="2026-10-31", department=marketing)
    assert panel(in_acme["manager"], "assets", outside).rows[-1][1] == 0
    assert totals(panel(in_acme["alice"], "channels", OCT).rows, 2) == 1
