"""The workspace over HTTP: the mobile page's one-tap actions, the API, the managers' views."""

from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company
from siyu.workspace.models import Script, StaffTask, TaskStatus
from siyu.workspace.services import alert_send, category_save, script_save, task_create


def test_mobile_page_shows_my_day_and_marks_done_in_one_tap(acme: Company, login: Any) -> None:
    alice = acme["alice"]
    with tenant_context(acme.tenant):
        mine = task_create(staff=alice, title="给张姐发新品", kind="sop", body="张姐，新品到了～")
        later = task_create(
            staff=alice, title="下周回访", kind="sop", due_at=timezone.now() + timedelta(days=7)
        )
        task_create(staff=acme["bob"], title="Bob 的任务", kind="sop")
        alert_send(staff=alice, kind="x", text="客户 小王 打开了《春季新品》", dedupe_key="a")
        category = category_save(actor=acme["ops"], name="开场白")
        script = script_save(actor=acme["ops"], category_id=category.pk, title="问候", text="您好")
    client = login.session(alice)
    page = client.get(reverse("console:workspace")).content.decode()
    assert "给张姐发新品" in page and 'data-copy="张姐，新品到了～"' in page
    assert "下周回访" not in page and "Bob 的任务" not in page
    assert "春季新品" in page and "您好" in page and "workspace/copy.js" in page

    fragment = client.post(reverse("console:workspace_task_done", args=[mine.pk]))
    assert fragment.status_code == 200 and "已完成" in fragment.content.decode()
    assert client.post(reverse("console:workspace_script_use", args=[script.pk])).status_code == 204
    found = client.get(reverse("console:workspace_scripts"), {"q": "您"}).content.decode()
    assert "问候" in found and "用过 1 次" in found
    with tenant_context(acme.tenant):
        assert StaffTask.objects.get(pk=mine.pk).status == TaskStatus.DONE
        assert StaffTask.objects.get(pk=later.pk).status == TaskStatus.OPEN
        assert Script.objects.get(pk=script.pk).usage_count == 1


def test_api_lists_only_my_tasks_and_alerts(acme: Company, login: Any) -> None:
    with tenant_context(acme.tenant):
        task = task_create(staff=acme["alice"], title="回访", kind="sop")
        task_create(staff=acme["bob"], title="Bob", kind="sop")
        alert_send(staff=acme["bob"], kind="x", text="给 Bob 的", dedupe_key="b")
    alice, bob = login.token(acme["alice"]), login.token(acme["bob"])
    assert [t["title"] for t in alice.get("/api/v1/workspace/tasks").json()["items"]] == ["回访"]
    assert alice.get("/api/v1/workspace/alerts").json()["count"] == 0
    assert bob.get("/api/v1/workspace/alerts").json()["items"][0]["text"] == "给 Bob 的"
    refused = bob.post(f"/api/v1/workspace/tasks/{task.pk}/done")
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    done = alice.post(f"/api/v1/workspace/tasks/{task.pk}/done").json()
    assert done["status"] == "done" and done["done_at"]
    listed = alice.get("/api/v1/workspace/tasks", {"status": "open"}).json()
    assert listed["count"] == 0
    bad = alice.get("/api/v1/workspace/tasks", {"status": "nope"})
    assert bad.status_code == 422 and set(bad.json()) >= {"code", "message"}


def test_scripts_api_refuses_bad_input_and_changes_nothing(acme: Company, login: Any) -> None:
    ops = login.token(acme["ops"])
    category = ops.post(
        "/api/v1/workspace/script-categories", {"name": "价格异议"}, content_type="application/json"
    ).json()
    body = {
        "category_id": category["id"],
        "title": "太贵了",
        "text": "理解您的顾虑……",
        "attachments": [{"kind": "link", "url": "ftp://x.test/a"}],
    }
    bad = ops.post("/api/v1/workspace/scripts", body, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"
    unknown = {**body, "attachments": [], "extra": 1}
    assert (
        ops.post("/api/v1/workspace/scripts", unknown, content_type="application/json").status_code
        == 422
    )
    with tenant_context(acme.tenant):
        assert not Script.objects.exists()
    body["attachments"] = [{"kind": "link", "url": "https://x.test/a", "title": "价目表"}]
    created = ops.post("/api/v1/workspace/scripts", body, content_type="application/json")
    assert created.status_code == 201
    alice = login.token(acme["alice"])
    assert alice.get("/api/v1/workspace/scripts", {"q": "贵"}).json()["count"] == 1
    used = alice.post(f"/api/v1/workspace/scripts/{created.json()['id']}/use").json()
    assert used["usage_count"] == 1
    in_use = ops.delete(f"/api/v1/workspace/script-categories/{category['id']}")
    assert in_use.status_code == 409


def test_overview_counts_on_time_for_the_members_in_scope(acme: Company, login: Any) -> None:
    now = timezone.now()
    with tenant_context(acme.tenant):
        for member, done_late in (("alice", False), ("bob", True), ("carol", False)):
            task = task_create(
                staff=acme[member], title="t", kind="sop", due_at=now - timedelta(hours=1)
            )
            done_at = now if done_late else now - timedelta(hours=2)
            StaffTask.objects.filter(pk=task.pk).update(status=TaskStatus.DONE, done_at=done_at)
        task_create(staff=acme["alice"], title="逾期", kind="sop", due_at=now - timedelta(hours=3))
    rows = login.token(acme["manager"]).get("/api/v1/workspace/tasks/overview").json()
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"销售主管", "Alice", "Bob"}  # carol is outside 销售部
    assert (by_name["Alice"]["due"], by_name["Alice"]["on_time"]) == (2, 1)
    assert by_name["Alice"]["overdue"] == 1 and by_name["Alice"]["on_time_rate"] == 0.5
    assert by_name["Bob"]["on_time_rate"] == 0.0 and by_name["销售主管"]["on_time_rate"] is None
    page = login.session(acme["manager"]).get(reverse("console:workspace_overview"))
    assert "50%" in page.content.decode()


def test_scripts_console_page_manages_the_library(acme: Company, login: Any) -> None:
    client = login.session(acme["manager"])
    url = reverse("console:workspace_scripts_manage")
    assert client.post(url, {"action": "category", "name": "售后"}).status_code == 302
    with tenant_context(acme.tenant):
        from siyu.workspace.models import ScriptCategory

        category = ScriptCategory.objects.get(name="售后")
    client.post(
        url, {"action": "script", "category_id": category.pk, "title": "退换", "text": "您好"}
    )
    # A bad form is refused with a message and nothing changes.
    client.post(url, {"action": "script", "category_id": "x", "title": "t", "text": "t"})
    page = client.get(url).content.decode()
    assert "退换" in page
    with tenant_context(acme.tenant):
        assert list(Script.objects.values_list("title", flat=True)) == ["退换"]
