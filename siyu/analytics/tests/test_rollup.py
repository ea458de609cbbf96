"""The channel rollup: adds and deletes through the real services, counted per local day,
source and receiving member by the event subscriber; the rebuild recomputes the same."""

from datetime import date
from typing import Any

import pytest
from django.core.management import call_command

from siyu.analytics.models import SourceDay
from siyu.analytics.selectors import source_report
from siyu.analytics.services import rollup_rebuild
from siyu.core.models import EventDelivery
from siyu.customers.models import StaffRelation
from siyu.testing.stories import Company

from .helpers import add, at, delete, deliver


def scenario(company: Company) -> None:
    """Oct 1: two adds through 渠道码 5, one through 裂变活动 3 (participant 9), one without a
    state. Oct 2 (just after local midnight): an add through campaign 3 (participant 11) and the
    first delete. Oct 3: a staff-side delete, and a second delete of an ended relation."""
    add(company, "alice", "wm-1", "ch:5", at(1))
    add(company, "bob", "wm-2", "ch:5", at(1, 23, 30))  # 15:30 UTC: still Oct 1 locally
    add(company, "alice", "wm-3", "fx:3:9", at(1, 12))
    add(company, "carol", "wm-4", "", at(1, 15))
    add(company, "carol", "wm-5", "fx:3:11", at(2, 0, 10))  # Oct 1 16:10 UTC: Oct 2 locally
    delete(company, "alice", "wm-1", at(2, 9))
    delete(company, "bob", "wm-2", at(3, 9), by="staff")
    delete(company, "alice", "wm-1", at(3, 10), by="staff")  # already ended: counts nowhere
    deliver()


def cells() -> set[tuple[Any, ...]]:
    return set(
        SourceDay.objects.values_list(
            "day", "source_kind", "source_id", "staff__userid", "scans", "adds", "deletes"
        )
    )


def test_adds_and_deletes_are_counted_per_local_day_source_and_member(in_acme: Company) -> None:
    scenario(in_acme)
    assert cells() == {
        (date(2026, 10, 1), "ch", "5", "alice", 0, 1, 0),
        (date(2026, 10, 1), "ch", "5", "bob", 0, 1, 0),
        (date(2026, 10, 1), "fx", "3", "alice", 0, 1, 0),
        (date(2026, 10, 1), "", "", "carol", 0, 1, 0),
        (date(2026, 10, 2), "fx", "3", "carol", 0, 1, 0),
        (date(2026, 10, 2), "ch", "5", "alice", 0, 0, 1),
        (date(2026, 10, 3), "ch", "5", "bob", 0, 0, 1),
    }
    report = source_report(actor=in_acme["boss"], start=date(2026, 10, 1), end=date(2026, 10, 3))
    totals = {row.key: (row.counts.adds, row.counts.deletes, row.net_adds) for row in report.rows}
    assert totals == {"ch:5": (2, 2, 0), "fx:3": (2, 0, 2), "-": (1, 0, 1)}
    assert [row.key for row in report.rows] == ["ch:5", "fx:3", "-"]  # most adds first
    daily = {line.day: (line.counts.adds, line.net_adds) for line in report.daily[("ch", "5")]}
    assert daily == {
        date(2026, 10, 1): (2, 2),
        date(2026, 10, 2): (0, -1),
        date(2026, 10, 3): (0, -1),
    }
    assert (report.total.counts.adds, report.total.counts.deletes) == (5, 2)
    # WeCom reports no scans: none of these sources has a number for them.
    assert all(row.scans is None for row in report.rows)
    assert report.rows[0].label == "渠道码 #5" and report.rows[1].label == "裂变活动 #3"


def test_each_event_is_counted_once_however_often_its_delivery_runs(in_acme: Company) -> None:
    scenario(in_acme)
    before = cells()
    for delivery in EventDelivery.objects.filter(subscriber="analytics.source_rollup"):
        from siyu.core.services import event_delivery_run

        assert event_delivery_run(delivery_id=delivery.pk) == "skipped"
    assert cells() == before


def test_a_transfer_is_neither_an_add_nor_a_loss(in_acme: Company) -> None:
    """在职继承: the handover's automatic delete and the takeover's add (add_way 201) move a
    customer between members; the channel neither won nor lost them."""
    add(in_acme, "alice", "wm-t", "ch:5", at(1))
    delete(in_acme, "alice", "wm-t", at(5), by="staff", delete_source="DELETE_BY_TRANSFER")
    add(in_acme, "bob", "wm-t", "ch:5", at(5), add_way=201)
    deliver()
    report = source_report(actor=in_acme["boss"], start=date(2026, 10, 1), end=date(2026, 10, 31))
    (row,) = report.rows
    assert (row.counts.adds, row.counts.deletes, row.counts.cohort) == (1, 0, 1)
    assert row.retention_7 == 1.0  # the customer stayed with the company


def test_rebuild_equals_the_incremental_rollup(in_acme: Company) -> None:
    scenario(in_acme)
    incremental = cells()
    SourceDay.objects.all().delete()
    assert rollup_rebuild() == len(incremental)
    assert cells() == incremental


def test_rebuild_since_a_day_keeps_earlier_days_and_repairs_later_ones(
    in_acme: Company,
) -> None:
    scenario(in_acme)
    incremental = cells()
    SourceDay.objects.filter(day=date(2026, 10, 1)).update(adds=99)  # untouched: before since
    SourceDay.objects.filter(day__gte=date(2026, 10, 2)).update(deletes=7)  # repaired
    rollup_rebuild(since=date(2026, 10, 2))
    repaired = {cell for cell in cells() if cell[0] >= date(2026, 10, 2)}
    assert repaired == {cell for cell in incremental if cell[0] >= date(2026, 10, 2)}
    assert {cell[5] for cell in cells() if cell[0] == date(2026, 10, 1)} == {99}


def test_the_rebuild_command_backfills_a_tenant(
    acme: Company, capsys: pytest.CaptureFixture[str]
) -> None:
    from siyu.core.tenancy import tenant_context

    with tenant_context(acme.tenant):
        scenario(acme)
        incremental = cells()
        SourceDay.objects.all().delete()
    call_command("analytics", "rebuild", "--tenant", "acme")
    assert "rebuilt 7 cells of acme" in capsys.readouterr().out
    with tenant_context(acme.tenant):
        assert cells() == incremental
        assert StaffRelation.objects.count() == 5
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("analytics", "rebuild", "--tenant", "nope")
    with pytest.raises(CommandError):
        call_command("analytics", "rebuild", "--tenant", "acme", "--since", "yesterday")


def test_scans_are_counted_only_where_an_app_reports_them(
    in_acme: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fission app will report poster visits; declared here for the test only. A visit
    naming no member counts company-wide; managers see only their members' scans."""
    from siyu.analytics import sources
    from siyu.core import events as event_registry
    from siyu.core.services import event_record

    monkeypatch.setitem(
        event_registry._event_types,
        "fission.visited",
        event_registry.EventType("fission.visited", "海报被访问", webhook=False),
    )
    monkeypatch.setitem(
        sources._scan_events,
        "fission.visited",
        sources.ScanEvent("fx", lambda event: str(event.payload.get("campaign_id") or "") or None),
    )
    for userid in ("alice", "alice", "carol", ""):
        event_record(
            type="fission.visited",
            source="h5",
            occurred_at=at(1),
            payload={"campaign_id": 3, "staff_userid": userid},
        )
    event_record(type="fission.visited", source="h5", occurred_at=at(1), payload={})
    add(in_acme, "alice", "wm-1", "fx:3:9", at(1))
    add(in_acme, "alice", "wm-2", "ch:5", at(1))
    deliver()
    boss = source_report(actor=in_acme["boss"], start=date(2026, 10, 1), end=date(2026, 10, 1))
    scans = {row.key: (row.scans, row.counts.adds) for row in boss.rows}
    assert scans == {"fx:3": (4, 1), "ch:5": (None, 1)}
    manager = source_report(
        actor=in_acme["manager"], start=date(2026, 10, 1), end=date(2026, 10, 1)
    )
    assert {row.key: row.scans for row in manager.rows} == {"fx:3": 2, "ch:5": None}
    incremental = cells()
    SourceDay.objects.all().delete()
    rollup_rebuild()
    assert cells() == incremental


def test_a_delete_belongs_to_the_add_it_ends(in_acme: Company) -> None:
    """Added through code 5, deleted, re-added through code 6, deleted again: one loss each,
    on the day it happened, whichever order the rebuild or the deliveries see them in."""
    add(in_acme, "alice", "wm-1", "ch:5", at(1))
    delete(in_acme, "alice", "wm-1", at(2))
    add(in_acme, "alice", "wm-1", "ch:6", at(3))
    delete(in_acme, "alice", "wm-1", at(4), by="staff")
    deliver()
    assert {cell for cell in cells() if cell[6]} == {
        (date(2026, 10, 2), "ch", "5", "alice", 0, 0, 1),
        (date(2026, 10, 4), "ch", "6", "alice", 0, 0, 1),
    }
    incremental = cells()
    rollup_rebuild()
    assert cells() == incremental
    rollup_rebuild(since=date(2026, 10, 4))  # the re-add before the cut is looked up
    assert cells() == incremental
