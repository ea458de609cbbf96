"""How the subscriber writes its cells: one upsert per table and member group whatever the number
of cells, deltas of one event on one cell summed, and increments exact when workers race on
new cells (on PostgreSQL they truly race; on SQLite the IMMEDIATE transactions serialise them)."""

from datetime import date
from functools import partial

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from siyu.analytics.sources import NO_SOURCE
from siyu.analytics.tests.helpers import add, at
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.dashboards import services
from siyu.dashboards.models import CohortCell, MetricDay, MetricMonth
from siyu.dashboards.rollup import CohortDelta, Delta, Outcome
from siyu.dashboards.services import rollup_apply, rollup_rebuild
from siyu.testing.concurrency import race
from siyu.testing.stories import Company

from .helpers import record

OCT1 = date(2026, 10, 1)
CELL_TABLES = ("dashboards_metricday", "dashboards_metricmonth", "dashboards_cohortcell")


def latest_add() -> Event:
    event = Event.objects.filter(type="customer.added").order_by("-pk").first()
    assert event is not None
    return event


def day_values(metric: str) -> list[tuple[str | None, int]]:
    """The metric's rows of Oct 1 as (member, value), nobody's first."""
    rows = MetricDay.objects.filter(day=OCT1, metric=metric).values_list("staff__userid", "value")
    return sorted(rows, key=lambda row: (row[0] or "", row[1]))


def test_an_add_writes_its_cells_in_three_statements(in_acme: Company) -> None:
    # Given alice's first add, which creates all its cells,
    add(in_acme, "alice", "wm-1", "ch:5", at(1, 10))
    event = latest_add()
    with CaptureQueriesContext(connection) as first:
        rollup_apply(event=event)
    # when her second add of the day increments the same (now shared) cells,
    add(in_acme, "alice", "wm-2", "ch:5", at(1, 11))
    event = latest_add()
    with CaptureQueriesContext(connection) as second:
        rollup_apply(event=event)
    # then each costs the track's read and insert, the member's lookup, and one upsert per table
    # for its 5 day, 2 month and 2 cohort cells (it was 9 statements for the cells that existed,
    # 36 for new ones).
    for captured in (first, second):
        sql = [query["sql"] for query in captured.captured_queries]
        assert len(sql) == 6
        upserts = zip(sql[3:], CELL_TABLES, strict=True)
        assert all(s.startswith(f"INSERT INTO {connection.ops.quote_name(t)} ") for s, t in upserts)
    assert day_values("new_customers") == [("alice", 2)]
    assert day_values("funnel:added") == [("alice", 2)]
    assert set(MetricMonth.objects.values_list("metric", "value")) == {
        ("customers", 2),
        ("stage:normal", 2),
    }
    assert set(CohortCell.objects.values_list("grain", "size", "lost")) == {
        ("week", 2, 0),
        ("month", 2, 0),
    }


def test_deltas_on_one_cell_add_up_with_and_without_a_member(
    in_acme: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = in_acme["alice"].pk
    source = ("ch", "5")
    MetricDay.objects.create(
        day=OCT1, staff_id=None, source_kind="", source_id="", metric="gmv_fen", value=100
    )
    # Given an outcome naming some cells twice, for alice and for nobody, one cell existing,
    outcome = Outcome(
        deltas=[
            Delta(OCT1, alice, source, "customers", 1),
            Delta(OCT1, alice, source, "customers", 2),
            Delta(OCT1, alice, source, "gmv_fen", 500),
            Delta(OCT1, None, NO_SOURCE, "gmv_fen", 30),
            Delta(OCT1, None, NO_SOURCE, "gmv_fen", -5),
            Delta(OCT1, None, NO_SOURCE, "customers", 4),
        ],
        cohorts=[
            CohortDelta("week", date(2026, 9, 28), alice, source, 0, size=1),
            CohortDelta("week", date(2026, 9, 28), alice, source, 0, lost=1),
        ],
    )
    monkeypatch.setattr(services, "apply", lambda *args: outcome)
    event = record("order.paid", None, at(1), order_id=1)
    # when it is applied,
    with CaptureQueriesContext(connection) as captured:
        rollup_apply(event=event)
    # then each sum lands on one row, in one upsert per table and member group (day ×2,
    # month ×2, cohort ×1).
    assert len(captured.captured_queries) == 5
    assert day_values("customers") == [(None, 4), ("alice", 3)]
    assert day_values("gmv_fen") == [(None, 125), ("alice", 500)]
    assert set(MetricMonth.objects.values_list("staff_id", "metric", "value")) == {
        (alice, "customers", 3),
        (None, "customers", 4),
    }
    assert list(CohortCell.objects.values_list("staff_id", "size", "lost")) == [(alice, 1, 1)]


def test_cells_without_a_member_are_counted_as_the_rebuild_counts_them(in_acme: Company) -> None:
    # Given orders paid by no known customer nor member (cells with no staff),
    for order in (1, 2):
        event = record("order.paid", None, at(1, 9 + order), order_id=order, amount_fen=300)
        rollup_apply(event=event)
    add(in_acme, "alice", "wm-1", "ch:5", at(1))
    rollup_apply(event=latest_add())
    # then they were upserted on one row each, as a rebuild from the log recomputes them.
    assert day_values("gmv_fen") == [(None, 600)]
    assert day_values("orders") == [(None, 2)]
    counted = set(MetricDay.objects.values_list("day", "staff_id", "metric", "subject", "value"))
    rollup_rebuild()
    assert (
        set(MetricDay.objects.values_list("day", "staff_id", "metric", "subject", "value"))
        == counted
    )


@pytest.mark.django_db(transaction=True)
def test_workers_racing_on_new_cells_lose_no_increment(acme: Company) -> None:
    # Given 6 adds of the same day, member and source waiting for the rollup (no cell exists),
    workers = 6
    with tenant_context(acme.tenant), transaction.atomic():
        for n in range(workers):
            add(acme, "alice", f"wm-{n}", "ch:5", at(1, 10, n))
        pending = list(
            EventDelivery.objects.filter(
                subscriber="dashboards.rollup", status=DeliveryStatus.PENDING
            ).values_list("pk", flat=True)
        )
    assert len(pending) == workers
    outcomes: list[str] = []
    # when one worker each runs them at once,
    race(
        [
            partial(lambda pk: outcomes.append(event_delivery_run(delivery_id=pk)), pk)
            for pk in pending
        ]
    )
    # then every delivery succeeded at its first attempt and every add is counted once.
    assert outcomes == ["done"] * workers
    with tenant_context(acme.tenant):
        assert day_values("new_customers") == [("alice", workers)]
        assert day_values("adds") == [("alice", workers)]
        assert list(MetricMonth.objects.filter(metric="customers").values_list("value")) == [
            (workers,)
        ]
        assert set(CohortCell.objects.values_list("grain", "size")) == {
            ("week", workers),
            ("month", workers),
        }
