"""The SOP API and console pages: create, start, pause, read the funnel; bad input refused."""

from typing import Any

from django.urls import reverse

from siyu.core.tenancy import tenant_context
from siyu.sop.models import Sop, SopStatus
from siyu.testing.stories import Company

BODY: dict[str, Any] = {
    "name": "新客 7 天",
    "trigger_kind": "event",
    "trigger": {"event_type": "customer.added", "conditions": {"state": "spring"}},
    "goal_event": "order.paid",
    "steps": [
        {"actions": [{"type": "task", "config": {"title": "打招呼", "body": "欢迎"}}]},
        {
            "delay_minutes": 1440,
            "condition": "stage:intent",
            "else_action": "exit",
            "actions": [{"type": "notify", "config": {"text": "该跟进了"}}],
        },
    ],
}


def test_the_api_creates_starts_pauses_and_reports(acme: Company, login) -> None:
    client = login.token(acme["ops"])
    created = client.post("/api/v1/sops", BODY, content_type="application/json")
    assert created.status_code == 201, created.content
    sop = created.json()
    assert (sop["status"], len(sop["steps"])) == ("draft", 2)
    assert sop["steps"][1]["actions"] == [{"type": "notify", "config": {"text": "该跟进了"}}]
    started = client.post(f"/api/v1/sops/{sop['id']}/activate")
    assert started.json()["status"] == "active"
    assert client.post(f"/api/v1/sops/{sop['id']}/pause").json()["status"] == "paused"
    funnel = client.get(f"/api/v1/sops/{sop['id']}/funnel").json()
    assert funnel["enrolled"] == 0
    assert funnel["steps"] == [
        {"order": 1, "reached": 0, "done": 0},
        {"order": 2, "reached": 0, "done": 0},
    ]


def test_bad_input_is_a_clear_error_and_changes_nothing(acme: Company, login) -> None:
    client = login.token(acme["ops"])
    backwards = {
        **BODY,
        "steps": [
            {"actions": []},
            {"condition": "stage:paid", "else_action": "goto", "else_goto": 1},
        ],
    }
    response = client.post("/api/v1/sops", backwards, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert "循环" in response.json()["message"]
    past = {**BODY, "trigger_kind": "date", "trigger": {"at": "2020-01-01T09:00"}}
    created = client.post("/api/v1/sops", past, content_type="application/json").json()
    refused = client.post(f"/api/v1/sops/{created['id']}/activate")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_input")
    with tenant_context(acme.tenant):
        assert list(Sop.objects.values_list("status", flat=True)) == [SopStatus.DRAFT]


def _form(**extra: str) -> dict[str, str]:
    return {
        "name": "沉默唤醒",
        "kind": "customer",
        "trigger_kind": "silence",
        "days": "14",
        "reentry": "after_completion",
        "reentry_interval_hours": "720",
        "s1-type": "task",
        "s1-text": "问候一下",
        "s1-body": "好久不见",
        "s2-delay": "60",
        "s2-type": "tag_add",
        "s2-text": "",
        **extra,
    }


def test_the_console_editor_creates_and_shows_the_funnel(acme: Company, login) -> None:
    client = login.session(acme["ops"])
    assert client.get(reverse("console:sop_new")).status_code == 200
    refused = client.post(reverse("console:sop_new"), _form())  # step 2 has no tags
    assert refused.status_code == 400
    assert "请选择 1–20 个标签" in refused.content.decode()
    assert "问候一下" in refused.content.decode()  # the form comes back filled in
    response = client.post(
        reverse("console:sop_new"), _form(**{"s2-type": "", "s2-condition": "stage:intent"})
    )
    assert response.status_code == 302
    with tenant_context(acme.tenant):
        sop = Sop.objects.get()
        assert sop.trigger == {"days": 14}
        assert [s.actions.count() for s in sop.steps.all()] == [1, 0]
    page = client.get(reverse("console:sop", kwargs={"sop_id": sop.pk}))
    assert page.status_code == 200
    assert "sop-funnel-data" in page.content.decode()
    client.post(reverse("console:sop", kwargs={"sop_id": sop.pk}), {"op": "activate"})
    with tenant_context(acme.tenant):
        assert Sop.objects.get().status == SopStatus.ACTIVE
    assert "沉默唤醒" in client.get(reverse("console:sops")).content.decode()
    edit = client.get(reverse("console:sop_edit", kwargs={"sop_id": sop.pk}))
    assert "问候一下" in edit.content.decode()
