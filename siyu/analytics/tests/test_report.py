"""The channel report: retention cohorts, conversion and GMV, spend with cost per customer and
ROI, data scopes, and the audited export."""

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.analytics import sources
from siyu.analytics.selectors import Line, Report, source_report, spread
from siyu.analytics.services import parse_yuan, spend_create, spend_delete
from siyu.audit.models import AuditEntry
from siyu.core import events as event_registry
from siyu.core.errors import InvalidInput, NotFound, PermissionDenied
from siyu.core.services import event_record
from siyu.core.tenancy import tenant_context
from siyu.customers.lifecycle import stage_set
from siyu.testing.stories import Company

from .helpers import add, at, delete, deliver


def october(actor: StaffMember, **filters: Any) -> Report:
    return source_report(actor=actor, start=date(2026, 10, 1), end=date(2026, 10, 31), **filters)


def row_of(report: Report, key: str) -> Line:
    return next(row for row in report.rows if row.key == key)


def test_retention_counts_who_is_still_there_n_days_after_the_add(in_acme: Company) -> None:
    add(in_acme, "alice", "wm-1", "ch:7", at(1))
    add(in_acme, "alice", "wm-2", "ch:7", at(1))
    add(in_acme, "bob", "wm-3", "ch:7", at(1))
    add(in_acme, "bob", "wm-4", "ch:7", at(1))
    delete(in_acme, "alice", "wm-1", at(1, 18))  # gone within the first day
    delete(in_acme, "alice", "wm-2", at(4))  # stayed a day, not a week
    delete(in_acme, "bob", "wm-3", at(20), by="staff")  # stayed a week, not a month
    deliver()
    row = row_of(october(in_acme["boss"]), "ch:7")
    assert (row.counts.cohort, row.retention_1, row.retention_7, row.retention_30) == (
        4,
        0.75,
        0.5,
        0.25,
    )
    day = next(line for line in october(in_acme["boss"]).daily[("ch", "7")])
    assert (day.day, day.retention_7) == (date(2026, 10, 1), 0.5)


def test_retention_is_not_guessed_before_n_days_have_passed(in_acme: Company) -> None:
    two_days_ago = timezone.now() - timedelta(days=2)
    add(in_acme, "alice", "wm-new", "ch:8", two_days_ago)
    deliver()
    today = timezone.localdate()
    row = row_of(
        source_report(actor=in_acme["boss"], start=today - timedelta(days=3), end=today), "ch:8"
    )
    assert (row.retention_1, row.retention_7, row.retention_30) == (1.0, None, None)


def test_conversion_counts_customers_who_reached_paid_and_gmv_waits_for_orders(
    in_acme: Company,
) -> None:
    paid = add(in_acme, "alice", "wm-1", "ch:5", at(1)).customer
    regressed = add(in_acme, "alice", "wm-2", "ch:5", at(2)).customer
    intent = add(in_acme, "bob", "wm-3", "ch:5", at(2)).customer
    other = add(in_acme, "bob", "wm-4", "fx:3:9", at(2)).customer
    stage_set(customer=paid, stage="paid", source="console")
    stage_set(customer=regressed, stage="repeat", source="console")
    stage_set(customer=regressed, stage="normal", source="console")  # reached it once: counts
    stage_set(customer=intent, stage="intent", source="console")
    stage_set(customer=other, stage="agent", source="console")
    deliver()
    report = october(in_acme["boss"])
    row = row_of(report, "ch:5")
    assert (row.counts.converted, row.counts.cohort) == (2, 3)
    assert row.conversion_rate == pytest.approx(2 / 3)
    assert row_of(report, "fx:3").counts.converted == 1
    assert row.counts.gmv_fen == 0


def test_gmv_is_paid_less_refunded_and_buyers_count_as_converted(
    in_acme: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop declares ``order.paid`` / ``order.refunded`` (payload ``amount_fen``); declared
    here too so the test does not depend on the shop being installed."""
    for name in ("order.paid", "order.refunded"):
        monkeypatch.setitem(
            event_registry._event_types, name, event_registry.EventType(name, name, webhook=False)
        )
    buyer = add(in_acme, "alice", "wm-1", "ch:5", at(1)).customer
    add(in_acme, "alice", "wm-2", "ch:5", at(1))
    for kind, amount in (("order.paid", 1000), ("order.paid", 3000), ("order.refunded", 500)):
        event_record(type=kind, source="h5", customer_id=buyer.pk, payload={"amount_fen": amount})
    spend_create(
        actor=in_acme["ops"],
        source_kind="ch",
        source_id="5",
        start=date(2026, 10, 1),
        end=date(2026, 10, 1),
        amount_fen=1400,
    )
    deliver()
    report = october(in_acme["boss"])
    row = row_of(report, "ch:5")
    assert report.gmv_available is True
    assert row.counts.gmv_fen == 3500
    assert (row.counts.converted, row.counts.cohort) == (1, 2)  # no stage rule moved the buyer
    assert row.roi == pytest.approx((3500 - 1400) / 1400)
    assert row.cost_per_customer_fen == 700


def test_spend_is_validated_and_changes_nothing_when_refused(in_acme: Company) -> None:
    ops = in_acme["ops"]
    good = {"source_kind": "ch", "source_id": "5", "start": date(2026, 10, 1)}
    bad_cases = [
        {**good, "end": date(2026, 10, 1), "amount_fen": -1},
        {**good, "end": date(2026, 10, 1), "amount_fen": 1.5},
        {**good, "end": date(2026, 9, 30), "amount_fen": 100},
        {**good, "end": date(2027, 10, 2), "amount_fen": 100},
        {**good, "source_kind": "zz", "end": date(2026, 10, 1), "amount_fen": 100},
        {**good, "source_kind": "", "end": date(2026, 10, 1), "amount_fen": 100},
        {**good, "source_id": "a:b", "end": date(2026, 10, 1), "amount_fen": 100},
    ]
    for case in bad_cases:
        with pytest.raises(InvalidInput):
            spend_create(actor=ops, **case)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        spend_create(actor=in_acme["manager"], end=date(2026, 10, 1), amount_fen=1, **good)  # type: ignore[arg-type]
    assert not AuditEntry.objects.filter(action__startswith="analytics.spend").exists()
    spend = spend_create(actor=ops, end=date(2026, 10, 1), amount_fen=0, **good)  # type: ignore[arg-type]
    spend_delete(actor=ops, spend_id=spend.pk)
    with pytest.raises(NotFound):
        spend_delete(actor=ops, spend_id=spend.pk)
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "analytics.spend_create",
        "analytics.spend_delete",
    ]


def test_yuan_input_becomes_whole_fen() -> None:
    assert parse_yuan("1,234.5") == 123450
    assert parse_yuan(" 99 ") == 9900
    for bad in ("12.345", "abc", "", "NaN", "1e400", "-5", "-0.01"):
        with pytest.raises(InvalidInput):
            parse_yuan(bad)


def test_spend_spreads_over_its_days_and_always_adds_up() -> None:
    assert spread(100, date(2026, 10, 1), date(2026, 10, 3)) == {
        date(2026, 10, 1): 34,
        date(2026, 10, 2): 33,
        date(2026, 10, 3): 33,
    }


def test_cost_per_customer_and_roi(in_acme: Company) -> None:
    for n in range(3):
        add(in_acme, "alice", f"wm-{n}", "ch:5", at(1))
    delete(in_acme, "alice", "wm-0", at(2))
    add(in_acme, "alice", "wm-x", "ch:6", at(1))
    add(in_acme, "alice", "wm-y", "ch:9", at(1))
    delete(in_acme, "alice", "wm-y", at(1, 11))
    deliver()
    for source_id, amount in (("5", 10_000), ("9", 500)):
        spend_create(
            actor=in_acme["ops"],
            source_kind="ch",
            source_id=source_id,
            start=date(2026, 9, 30),  # half of it before the range: only Oct 1 counts
            end=date(2026, 10, 1),
            amount_fen=amount * 2,
        )
    report = october(in_acme["boss"])
    spent = row_of(report, "ch:5")
    assert (spent.spend_fen, spent.net_adds, spent.cost_per_customer_fen) == (10_000, 2, 5_000)
    assert spent.roi == -1.0  # no GMV yet: all of the spend is lost
    free = row_of(report, "ch:6")
    assert (free.spend_fen, free.cost_per_customer_fen, free.roi) == (0, None, None)
    shrinking = row_of(report, "ch:9")  # spend without net growth has no cost per customer
    assert (shrinking.net_adds, shrinking.cost_per_customer_fen) == (0, None)
    assert report.total.counts.spend_fen == 10_500
    one_day = source_report(actor=in_acme["boss"], start=date(2026, 10, 2), end=date(2026, 10, 2))
    assert row_of(one_day, "ch:5").spend_fen == 0


def test_managers_see_their_department_without_company_wide_costs(in_acme: Company) -> None:
    add(in_acme, "alice", "wm-1", "ch:5", at(1))  # 华东组, in the manager's 销售部
    add(in_acme, "bob", "wm-2", "ch:5", at(1))  # 华南组, in it too
    add(in_acme, "carol", "wm-3", "ch:5", at(1))  # 市场部, outside
    add(in_acme, "carol", "wm-4", "fx:3:9", at(1))
    delete(in_acme, "carol", "wm-3", at(2))
    deliver()
    spend_create(
        actor=in_acme["ops"],
        source_kind="ch",
        source_id="5",
        start=date(2026, 10, 1),
        end=date(2026, 10, 1),
        amount_fen=900,
    )
    mine = october(in_acme["manager"])
    assert [
        (row.key, row.counts.adds, row.counts.deletes, row.counts.cohort) for row in mine.rows
    ] == [("ch:5", 2, 0, 2)]
    assert mine.cost_visible is False
    assert (mine.rows[0].spend_fen, mine.rows[0].cost_per_customer_fen, mine.rows[0].roi) == (
        None,
        None,
        None,
    )
    everyone = october(in_acme["boss"])
    assert row_of(everyone, "ch:5").counts.adds == 3
    assert row_of(everyone, "ch:5").cost_per_customer_fen == 450
    with pytest.raises(PermissionDenied):
        october(in_acme["alice"])


def test_sources_compare_side_by_side_and_filter_by_kind(in_acme: Company) -> None:
    add(in_acme, "alice", "wm-1", "ch:5", at(1))
    add(in_acme, "alice", "wm-2", "ch:6", at(1))
    add(in_acme, "alice", "wm-3", "fx:3:9", at(1))
    add(in_acme, "alice", "wm-4", "", at(1))
    deliver()
    compared = october(in_acme["boss"], sources=[("ch", "6"), ("fx", "3"), ("ch", "77")])
    assert {row.key: row.counts.adds for row in compared.rows} == {"ch:6": 1, "fx:3": 1, "ch:77": 0}
    assert len(compared.daily[("ch", "77")]) == 31
    by_kind = october(in_acme["boss"], kind="ch")
    assert {row.key for row in by_kind.rows} == {"ch:5", "ch:6"}
    unlabelled = october(in_acme["boss"], kind="")
    assert [row.key for row in unlabelled.rows] == ["-"]
    with pytest.raises(InvalidInput):
        source_report(actor=in_acme["boss"], start=date(2026, 10, 2), end=date(2026, 10, 1))
    with pytest.raises(InvalidInput):
        source_report(actor=in_acme["boss"], start=date(2025, 1, 1), end=date(2026, 10, 1))


def test_apps_name_their_sources_lazily(in_acme: Company, monkeypatch: pytest.MonkeyPatch) -> None:
    """The channels app registers a resolver; a code it no longer knows keeps the fallback."""
    monkeypatch.setitem(sources._name_resolvers, "ch", lambda ids: {"5": "门店海报"})
    add(in_acme, "alice", "wm-1", "ch:5", at(1))
    add(in_acme, "alice", "wm-2", "ch:6", at(1))
    deliver()
    labels = {row.key: row.label for row in october(in_acme["boss"]).rows}
    assert labels == {"ch:5": "门店海报", "ch:6": "渠道码 #6"}


def test_codes_and_campaigns_are_named_by_their_own_apps(in_acme: Company, globex: Company) -> None:
    from siyu.channels.models import ChannelCode
    from siyu.fission.models import Campaign

    code = ChannelCode.objects.create(name="门店海报", kind="single")
    now = timezone.now()
    campaign = Campaign.objects.create(
        name="老带新", kind="task", starts_at=now, ends_at=now + timedelta(days=7)
    )
    with tenant_context(globex.tenant):
        theirs = ChannelCode.objects.create(name="别家的码", kind="single")
    keys = [("ch", str(code.pk)), ("fx", str(campaign.pk)), ("ch", str(theirs.pk)), ("ch", "x")]
    assert sources.source_labels(keys) == {
        ("ch", str(code.pk)): "门店海报",
        ("fx", str(campaign.pk)): "老带新",
        ("ch", str(theirs.pk)): f"渠道码 #{theirs.pk}",  # another tenant's code is not named
        ("ch", "x"): "渠道码 #x",
    }


def test_other_tenants_see_nothing(in_acme: Company, globex: Company) -> None:
    add(in_acme, "alice", "wm-1", "ch:5", at(1))
    deliver()
    from siyu.core.tenancy import tenant_context

    with tenant_context(globex.tenant):
        assert october(globex["boss"]).rows == []
