"""Churn: deletions recorded both ways with source and known reason, alerts, loss rates per
member and per channel within the data scope, reasons written by staff; API and console."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.errors import InvalidInput, NotFound
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.insights import selectors, services
from siyu.insights.models import ChurnRecord
from siyu.insights.tests.helpers import customer, delete, deliver, paid
from siyu.testing.stories import Company
from siyu.workspace.models import StaffAlert


@pytest.fixture
def churned(acme: Company) -> Company:
    """alice: 3 customers via ch:7 (one deletes her, one she deletes, one a day after adding);
    bob: 2 customers without a source, one deletes him."""
    now = timezone.now()
    with tenant_context(acme.tenant):
        customer(acme, "alice", "wm-a1", now - timedelta(days=40), state="ch:7")
        customer(acme, "alice", "wm-a2", now - timedelta(days=40), state="ch:7")
        customer(acme, "alice", "wm-a3", now - timedelta(hours=5), state="ch:7")
        customer(acme, "bob", "wm-b1", now - timedelta(days=60))
        customer(acme, "bob", "wm-b2", now - timedelta(days=60))
        paid("wm-a1", now - timedelta(days=20), 19900, 1)
        delete(acme, "alice", "wm-a1", now - timedelta(days=3))
        delete(acme, "alice", "wm-a2", now - timedelta(days=2), by="staff")
        delete(acme, "alice", "wm-a3", now - timedelta(hours=1))
        delete(acme, "bob", "wm-b1", now - timedelta(days=1))
        assert deliver() == 4
    return acme


def test_deletions_are_recorded_both_ways_with_source_reason_and_value(churned: Company) -> None:
    with tenant_context(churned.tenant):
        records = {r.customer.name: r for r in ChurnRecord.objects.select_related("customer")}
        assert set(records) == {"wm-a1", "wm-a2", "wm-a3", "wm-b1"}
        a1, a2, a3, b1 = (records[k] for k in ("wm-a1", "wm-a2", "wm-a3", "wm-b1"))
        assert (a1.direction, a1.source_kind, a1.source_id) == ("customer", "ch", "7")
        assert a1.paid_fen == 19900
        assert a2.direction == "staff"
        assert a3.known_reason == "quick_leave"
        assert a1.known_reason == ""
        assert (b1.source_kind, b1.staff_id) == ("", churned["bob"].pk)
        # The deleted member hears of it; a member's own delete goes to the boss.
        alerts = {
            (a.staff.userid, a.customer.name if a.customer else "")
            for a in StaffAlert.objects.select_related("staff", "customer")
        }
        assert alerts == {
            ("alice", "wm-a1"),
            ("alice", "wm-a3"),
            ("bob", "wm-b1"),
            ("boss", "wm-a2"),
        }
        assert "¥199.00" in StaffAlert.objects.get(customer_id=a1.customer_id).text


def test_churn_record_is_idempotent_and_ignores_handovers(churned: Company) -> None:
    with tenant_context(churned.tenant):
        event = Event.objects.filter(type="customer.deleted_staff").first()
        assert event is not None
        first = ChurnRecord.objects.get(event_id=event.pk)
        assert services.churn_record(event=event) == first
        assert ChurnRecord.objects.count() == 4
        customer(churned, "carol", "wm-c1", timezone.now() - timedelta(days=9))
        from siyu.customers.services import relation_deleted

        relation_deleted(
            staff=churned["carol"],
            external_userid="wm-c1",
            at=timezone.now(),
            by="staff",
            source="wecom",
            delete_source="DELETE_BY_TRANSFER",
        )
        deliver()
        assert ChurnRecord.objects.count() == 4


def test_loss_rates_per_member_and_source_follow_the_scope(churned: Company) -> None:
    now = timezone.now()
    with tenant_context(churned.tenant):
        report = selectors.loss_report(
            actor=churned["boss"], start=now - timedelta(days=30), end=now + timedelta(hours=1)
        )
        assert (report.total.base, report.total.by_customer, report.total.by_staff) == (5, 3, 1)
        staff = {row.label: row for row in report.by_staff}
        assert (staff["Alice"].base, staff["Alice"].lost, staff["Alice"].rate) == (3, 3, 1.0)
        assert staff["Bob"].customer_rate == 0.5
        sources = {row.key: row for row in report.by_source}
        assert (sources["ch:7"].base, sources["ch:7"].by_customer) == (3, 2)
        assert (sources["-"].base, sources["-"].by_customer) == (2, 1)
        assert report.reasons == {"": 3, "quick_leave": 1}
        own = selectors.loss_report(
            actor=churned["alice"], start=now - timedelta(days=30), end=now + timedelta(hours=1)
        )
        assert [row.label for row in own.by_staff] == ["Alice"]
        assert own.total.base == 3


def test_staff_record_reasons_for_their_own_deletions_only(churned: Company) -> None:
    with tenant_context(churned.tenant):
        mine = ChurnRecord.objects.get(customer__name="wm-a1")
        bobs = ChurnRecord.objects.get(customer__name="wm-b1")
        record = services.churn_reason_set(
            actor=churned["alice"], record_id=mine.pk, reason=" 嫌贵 ", source="console"
        )
        assert (record.reason, record.reason_by) == ("嫌贵", churned["alice"])
        event = Event.objects.get(type="customer.churn_reason")
        assert (event.customer_id, event.payload["reason"]) == (mine.customer_id, "嫌贵")
        with pytest.raises(NotFound):
            services.churn_reason_set(
                actor=churned["alice"], record_id=bobs.pk, reason="x", source="console"
            )
        with pytest.raises(InvalidInput):
            services.churn_reason_set(
                actor=churned["alice"], record_id=mine.pk, reason="  ", source="console"
            )
        assert ChurnRecord.objects.get(pk=bobs.pk).reason == ""


def test_api_report_records_and_reason(churned: Company, login) -> None:
    client = login.token(churned["alice"])
    report = client.get("/api/v1/insights/churn").json()
    assert report["total"]["by_customer"] == 2
    records = client.get("/api/v1/insights/churn/records?direction=customer").json()
    assert {item["customer_name"] for item in records["items"]} == {"wm-a1", "wm-a3"}
    record_id = records["items"][0]["id"]
    done = client.post(
        f"/api/v1/insights/churn/records/{record_id}/reason",
        data={"reason": "已购竞品"},
        content_type="application/json",
    )
    assert done.status_code == 200
    assert done.json()["reason"] == "已购竞品"
    bad = client.get("/api/v1/insights/churn?start=2026-05-01&end=2026-01-01")
    assert bad.status_code == 400
    assert set(bad.json()) >= {"code", "message"}


def test_console_churn_page_and_reason_form(churned: Company, login) -> None:
    client = login.session(churned["manager"])
    page = client.get(reverse("console:insights_churn"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "wm-a1" in html and "wm-b1" in html
    with tenant_context(churned.tenant):
        record = ChurnRecord.objects.get(customer__name="wm-b1")
    response = client.post(
        reverse("console:insights_churn_reason", args=[record.pk]), {"reason": "服务不满意"}
    )
    assert response.status_code == 302
    with tenant_context(churned.tenant):
        assert ChurnRecord.objects.get(pk=record.pk).reason == "服务不满意"
