"""Panel data and exports over the API and the console, role routing, empty states of panels
whose app is missing, and input validation."""

import io

import openpyxl
import pytest
from django.urls import reverse

from siyu.analytics.tests.helpers import at
from siyu.audit.models import AuditEntry
from siyu.core import events as registry
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company

from .helpers import deliver, record
from .test_rollup import customer, scenario

OCT = "start=2026-10-01&end=2026-10-31"


@pytest.fixture
def history(acme: Company) -> Company:
    with tenant_context(acme.tenant):
        scenario(acme)
    return acme


def test_panel_json_follows_the_data_scope(history: Company, login) -> None:
    url = f"/api/v1/dashboards/panels/staff?{OCT}"
    boss = login.token(history["boss"]).get(url).json()
    assert [c["key"] for c in boss["columns"]][:2] == ["name", "userid"]
    assert {row[1] for row in boss["rows"]} == {"alice", "bob", "carol"}
    mine = login.token(history["alice"]).get(url).json()
    assert [row[1] for row in mine["rows"]] == ["alice"]
    assert login.token(history["alice"]).get("/api/v1/dashboards").json() == {
        "kind": "staff",
        "panels": ["assets", "stages", "hot_leads", "repurchase", "slipping"],
    }


def test_bad_filters_are_refused(history: Company, login) -> None:
    client = login.token(history["boss"])
    for query, status in (
        ("start=2026-10-31&end=2026-10-01", 400),
        ("start=2025-01-01&end=2026-10-01", 400),
        ("channel=ch:5;drop", 422),
        ("department=999999", 404),
    ):
        response = client.get(f"/api/v1/dashboards/panels/assets?{query}")
        assert response.status_code == status, query
        assert {"code", "message"} <= set(response.json())
    assert client.get("/api/v1/dashboards/panels/nope").status_code in {404, 422}


def test_exports_hold_the_chart_numbers(history: Company, login) -> None:
    client = login.token(history["ops"])
    data = client.get(f"/api/v1/dashboards/panels/channels?{OCT}").json()
    csv = client.get(f"/api/v1/dashboards/panels/channels/export?{OCT}&format=csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").strip().splitlines()
    assert lines[0].split(",")[:3] == [c["label"] for c in data["columns"]][:3]
    assert lines[1].endswith(",130.00")  # ch:5's GMV (fen) in yuan
    assert len(lines) == len(data["rows"]) + 1
    xlsx = client.get(f"/api/v1/dashboards/panels/cohort/export?{OCT}&format=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and sheet.max_row == 1 + len(
        client.get(f"/api/v1/dashboards/panels/cohort?{OCT}").json()["rows"]
    )
    with tenant_context(history.tenant):
        assert AuditEntry.objects.filter(action="dashboards.exported").count() == 2


def test_console_dashboard_follows_the_role(history: Company, login) -> None:
    for member, marker in (
        ("boss", "账号盘点"),
        ("ops", "转化漏斗"),
        ("manager", "员工排行与人效"),
        ("alice", "热门线索"),
    ):
        page = login.session(history[member]).get(f"{reverse('console:dashboard')}?{OCT}")
        assert page.status_code == 200
        assert marker in page.content.decode()
    export = login.session(history["manager"]).get(
        f"{reverse('console:dashboard_export')}?{OCT}&panel=staff&format=csv"
    )
    assert export.status_code == 200 and "bob" in export.content.decode("utf-8-sig")
    assert "carol" not in export.content.decode("utf-8-sig")


def test_a_panel_of_a_missing_app_is_empty_not_invented(
    history: Company, login, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = login.token(history["ops"])
    content = client.get(f"/api/v1/dashboards/panels/content?{OCT}").json()
    assert content["available"] is True and content["rows"][0][1:] == ["7", 1, 0, 0]
    monkeypatch.delitem(registry._event_types, "masssend.sent", raising=False)
    masssend = client.get(f"/api/v1/dashboards/panels/masssend?{OCT}").json()
    assert masssend["available"] is False and masssend["rows"] == []


def test_staff_opportunities_and_risks(history: Company, login) -> None:
    """As of Oct 12, wm-1 (paid Oct 5–6, active until then) is neither slipping nor due;
    as of Nov 20 it is slipping, and due for a repurchase."""
    client = login.token(history["alice"])

    def ids(panel: str, end: str) -> list[str]:
        body = client.get(f"/api/v1/dashboards/panels/{panel}?end={end}").json()
        return [row[1] for row in body["rows"]]

    assert ids("slipping", "2026-10-12") == []
    assert ids("slipping", "2026-11-20") == ids("repurchase", "2026-11-20") != []
    assert ids("hot_leads", "2026-11-20") == []  # 意向 but paid: no longer a lead


def test_sop_funnel_counts_each_step(history: Company, login) -> None:
    with tenant_context(history.tenant):
        wm1 = customer("wm-1")
        record("sop.enrolled", wm1, at(10), sop_id=4)
        for step in (1, 2):
            record("sop.step_reached", wm1, at(10), sop_id=4, step=step)
        record("sop.converted", wm1, at(10), sop_id=4)
        record("sop.enrolled", customer("wm-3"), at(10), sop_id=4)
        deliver()
    body = login.token(history["ops"]).get(f"/api/v1/dashboards/panels/sop?{OCT}").json()
    assert [row[1:] for row in body["rows"]] == [
        ["4", "入组", 2],
        ["4", "1", 1],
        ["4", "2", 1],
        ["4", "转化", 1],
    ]
