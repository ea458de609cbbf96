"""/api/v1/analytics and 数据 → 渠道分析 over HTTP: validation, the audited and scoped export,
formula-safe cells, spend entry from the console."""

import csv
import io
from datetime import date

import openpyxl
import pytest
from django.urls import reverse

from siyu.analytics import sources
from siyu.analytics.models import Spend
from siyu.audit.models import AuditEntry
from siyu.core.events import event_types
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company

from .helpers import add, at, deliver


@pytest.fixture
def october(acme: Company) -> Company:
    with tenant_context(acme.tenant):
        add(acme, "alice", "wm-1", "ch:5", at(1))
        add(acme, "carol", "wm-2", "ch:5", at(1))
        add(acme, "carol", "wm-3", "fx:3:9", at(2))
        deliver()
    return acme


def test_the_report_endpoint(october: Company, login) -> None:
    client = login.token(october["ops"])
    body = client.get(
        "/api/v1/analytics/channels?start=2026-10-01&end=2026-10-03&source=ch:5&source=fx:3"
    ).json()
    assert [(row["source"], row["adds"], row["scans"], row["roi"]) for row in body["rows"]] == [
        ("ch:5", 2, None, None),
        ("fx:3", 1, None, None),
    ]
    assert [day["adds"] for day in body["series"][0]["days"]] == [2, 0, 0]
    assert body["total"]["adds"] == 3 and body["total"]["gmv_fen"] == 0
    assert body["cost_visible"] is True and body["rows"][0]["spend_fen"] == 0
    only_fx = client.get("/api/v1/analytics/channels?start=2026-10-01&end=2026-10-03&kind=fx")
    assert [row["source"] for row in only_fx.json()["rows"]] == ["fx:3"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("start=2026-10-03&end=2026-10-01", 400),
        ("start=2025-01-01&end=2026-10-01", 400),
        ("start=yesterday", 422),
        ("source=ch:5:9", 422),
        ("source=CH:5", 422),
        ("kind=channel", 422),
    ],
)
def test_bad_report_parameters_are_refused(
    october: Company, login, query: str, status: int
) -> None:
    response = login.token(october["boss"]).get(f"/api/v1/analytics/channels?{query}")
    assert response.status_code == status
    assert set(response.json()) >= {"code", "message"}


def test_spend_through_the_api_is_validated(october: Company, login) -> None:
    client = login.token(october["ops"])
    good = {"source": "ch:5", "start": "2026-10-01", "end": "2026-10-02", "amount_fen": 12000}
    for bad, status in [
        ({**good, "amount_fen": -1}, 422),
        ({**good, "amount_fen": 10.5}, 422),
        ({**good, "amount_fen": "100"}, 422),
        ({**good, "source": "-"}, 422),
        ({**good, "source": "zz:5"}, 400),
        ({**good, "end": "2026-09-01"}, 400),
        ({**good, "currency": "usd"}, 422),
    ]:
        response = client.post("/api/v1/analytics/spend", bad, content_type="application/json")
        assert response.status_code == status, (bad, response.content)
    with tenant_context(october.tenant):
        assert not Spend.objects.exists()
    created = client.post("/api/v1/analytics/spend", good, content_type="application/json")
    assert created.status_code == 201
    assert created.json()["source"] == "ch:5" and created.json()["amount_fen"] == 12000
    assert [item["id"] for item in client.get("/api/v1/analytics/spend").json()["items"]] == [
        created.json()["id"]
    ]
    report = client.get("/api/v1/analytics/channels?start=2026-10-01&end=2026-10-31").json()
    ch5 = next(row for row in report["rows"] if row["source"] == "ch:5")
    assert (ch5["spend_fen"], ch5["cost_per_customer_fen"], ch5["roi"]) == (12000, 6000, -1.0)
    assert client.delete(f"/api/v1/analytics/spend/{created.json()['id']}").status_code == 204


def test_the_export_is_audited_scoped_and_formula_safe(
    october: Company,
    login,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sources._name_resolvers, "ch", lambda ids: {"5": '=HYPERLINK("x")'})
    response = login.token(october["manager"]).post(
        "/api/v1/analytics/channels/export",
        {"start": "2026-10-01", "end": "2026-10-31", "format": "csv"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="channels-20261001-')
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:8] == ["日期", "来源类型", "来源", "名称", "扫码", "添加", "删除", "净增"]
    # Only alice's add is in the manager's department; carol's adds and campaign are not.
    assert [row[:8] for row in rows[1:]] == [
        ["2026-10-01", "渠道码", "ch:5", '\'=HYPERLINK("x")', "", "1", "0", "1"],
        ["合计", "渠道码", "ch:5", '\'=HYPERLINK("x")', "", "1", "0", "1"],
    ]
    assert rows[1][14:] == ["", "", ""]  # spend, cost, ROI: not in the manager's view
    with tenant_context(october.tenant):
        entry = AuditEntry.objects.get(action="analytics.exported")
    assert entry.actor_id == october["manager"].pk
    assert entry.details["rows"] == 2 and entry.details["cost_visible"] is False


def test_the_xlsx_export(october: Company, login) -> None:
    response = login.session(october["boss"]).get(
        reverse("console:analytics_export") + "?start=2026-10-01&end=2026-10-31&kind=ch&format=xlsx"
    )
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    values = [[cell.value for cell in row][:6] for row in sheet.iter_rows()]
    assert values[1:] == [
        ["2026-10-01", "渠道码", "ch:5", "渠道码 #5", None, 2],
        ["合计", "渠道码", "ch:5", "渠道码 #5", None, 2],
    ]
    with tenant_context(october.tenant):
        assert AuditEntry.objects.filter(action="analytics.exported").count() == 1


def test_the_console_page_shows_the_table_chart_and_honest_gaps(october: Company, login) -> None:
    page = login.session(october["ops"]).get(
        reverse("console:analytics_channels") + "?start=2026-10-01&end=2026-10-07"
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "echarts-5.6.0.min.js" in html and 'id="channel-chart-data"' in html
    assert "渠道码 #5" in html and "裂变活动 #3" in html
    assert "企业微信不提供扫码回调" in html
    # The GMV gap is stated only while no shop declares order.paid.
    shop_installed = any(t.name == "order.paid" for t in event_types())
    assert ("订单功能上线前 GMV 记为 0" in html) is not shop_installed
    assert "—" in html  # ROI without spend
    assert "记录花费" in html  # operations enter spend
    manager = login.session(october["manager"]).get(reverse("console:analytics_channels"))
    assert "记录花费" not in manager.content.decode()
    bad = login.session(october["ops"]).get(reverse("console:analytics_channels") + "?start=x")
    assert bad.status_code == 200 and "日期格式应为 YYYY-MM-DD" in bad.content.decode()


def test_spend_entered_in_the_console(october: Company, login) -> None:
    client = login.session(october["ops"])
    url = reverse("console:analytics_spend")
    refused = client.post(url, {"source": "ch:5", "start": "2026-10-01", "amount": "-3"})
    assert refused.status_code == 302
    done = client.post(url, {"source": "ch:5", "start": "2026-10-01", "amount": "1,200.50"})
    assert done.status_code == 302
    with tenant_context(october.tenant):
        spend = Spend.objects.get()
    assert (spend.amount_fen, spend.start, spend.end) == (
        120050,
        date(2026, 10, 1),
        date(2026, 10, 1),
    )
    assert (
        login.session(october["manager"])
        .post(url, {"source": "ch:5", "start": "2026-10-01", "amount": "1"})
        .status_code
        == 403
    )
