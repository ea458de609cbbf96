"""Channel codes against the sandbox over HTTP: the contact way in WeCom, the add through it,
its tags, remark and welcome message (once), the staff pool, and refusals that change nothing."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.channels.models import ChannelAdd, ChannelCode, WelcomeSend, WelcomeStatus
from siyu.channels.tasks import refresh_pools, send_welcome
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.customers.models import StaffRelation
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.tags.models import CustomerTag
from siyu.testing.stories import Company
from siyu.testing.work import run_pending_work
from siyu.wecom.callback.fastlane import WelcomeCodeArrived
from siyu.wecom.client.client import WeComClient
from siyu.wecom.models import CallbackInbox, InboxStatus
from siyu.wecom.tasks import welcome_code_arrived


def _post(client: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def _patch(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.patch(path, data=json.dumps(body), content_type="application/json")


def _tags(client: Client) -> list[dict[str, Any]]:
    group = _post(client, "/api/v1/tags/groups", {"name": "渠道", "tags": ["地推", "展会"]})
    assert group.status_code == 201, group.content
    return list(group.json()["tags"])


def _wire_callbacks(company: Company, control: SandboxControl, live_server: Any) -> None:
    tenant = company.tenant
    control.create_corp(
        tenant.corp_id,
        tenant.contact_secret,
        callback_url=f"{live_server.url}/wecom/callback/{tenant.slug}/",
    )


def _welcomes(sandbox: Sandbox, corp: str, ext: str) -> list[Any]:
    received = sandbox.world.corps[corp].received.get(ext, [])
    return [item for item in received if str(item[1]).startswith("welcome:")]


@pytest.mark.django_db(transaction=True)
def test_a_scan_adds_the_customer_with_tags_remark_welcome_once_and_tells_the_member(
    wecom_acme: Company, sandbox: Sandbox, live_server: Any, login: Any
) -> None:
    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    ops = login.token(wecom_acme["ops"])
    tags = _tags(ops)

    response = _post(
        ops,
        "/api/v1/channels",
        {
            "name": "门店地推",
            "kind": "single",
            "staff_ids": [wecom_acme["alice"].pk],
            "tag_ids": [t["id"] for t in tags],
            "skip_verify": False,
            "relation_remark": "地推客户",
            "relation_description": "来自门店地推活码",
            "welcome": {
                "text": "{客户昵称}你好，我是{员工姓名}",
                "attachments": [
                    {"type": "link", "title": "新人礼", "url": "https://example.com/gift"}
                ],
            },
        },
    )
    assert response.status_code == 201, response.content
    code = response.json()
    assert code["state"] == f"ch:{code['id']}"
    way = sandbox.world.corps[corp].contact_ways[code["config_id"]]
    assert (way.type, way.scene, way.state, way.user, way.skip_verify, way.remark) == (
        1,
        2,
        f"ch:{code['id']}",
        ["alice"],
        False,
        "门店地推",
    )

    # Every callback is delivered twice; the welcome still goes out once.
    _wire_callbacks(wecom_acme, control, live_server)
    control.set_faults(duplicate_rate=1.0, seed=7)
    scanned = control.scan(corp, config_id=code["config_id"], name="王小明")
    assert control.flush_callbacks()
    ext = scanned["external_userid"]
    outcomes = run_pending_work(wecom_acme)
    assert outcomes["welcomes"] == ["sent"]
    assert outcomes["retried"] == []  # sent by the add's own delivery
    assert outcomes["marks"] == ["done"]
    assert run_pending_work(wecom_acme)["welcomes"] == ["sent"]  # nothing more

    (welcome,) = _welcomes(sandbox, corp, ext)
    assert welcome[2]["text"] == {"content": f"王小明你好，我是{wecom_acme['alice'].name}"}
    assert welcome[2]["attachments"] == [
        {"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com/gift"}}
    ]
    follow = sandbox.world.corps[corp].follow("alice", ext)
    assert follow is not None
    assert sorted(follow.tag_ids) == sorted(t["wecom_id"] for t in tags)
    assert (follow.remark, follow.description) == ("地推客户", "来自门店地推活码")
    (notice,) = [m for m in sandbox.world.corps[corp].app_messages if m["touser"] == "alice"]
    assert "通过「门店地推」添加了你" in notice["text"]["content"]
    assert "地推、展会" in notice["text"]["content"]

    with tenant_context(tenant):
        relation = StaffRelation.objects.get(staff__userid="alice", external_userid=ext)
        applied = CustomerTag.objects.filter(customer_id=relation.customer_id)
        assert {(t.tag.name, t.source) for t in applied} == {
            ("地推", "channel"),
            ("展会", "channel"),
        }
        assert (
            Event.objects.filter(type="welcome.sent", customer_id=relation.customer_id).count() == 1
        )
        assert Event.objects.filter(type="customer.added").count() == 1
        assert ChannelCode.objects.get(pk=code["id"]).adds_total == 1
    listed = ops.get("/api/v1/channels").json()["items"][0]
    assert (listed["adds_today"], listed["adds_total"]) == (1, 1)

    # The QR image is read through the gateway.
    qr = ops.get(f"/api/v1/channels/{code['id']}/qr")
    assert qr.status_code == 200
    assert qr["Content-Type"] == "image/png"
    assert qr.content.startswith(b"\x89PNG")


@pytest.mark.django_db(transaction=True)
def test_the_welcome_lane_sends_from_the_callback_before_the_add_is_processed(
    wecom_acme: Company, sandbox: Sandbox, live_server: Any, login: Any
) -> None:
    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    ops = login.token(wecom_acme["ops"])
    code = _post(
        ops,
        "/api/v1/channels",
        {"name": "快线", "staff_ids": [wecom_acme["bob"].pk], "welcome": {"text": "{客户昵称}好"}},
    ).json()
    _wire_callbacks(wecom_acme, control, live_server)
    ext = control.scan(corp, config_id=code["config_id"], name="李雷")["external_userid"]
    assert control.flush_callbacks()
    with tenant_context(tenant):
        item = CallbackInbox.objects.get(change_type="add_external_contact")
        assert item.status == InboxStatus.PENDING  # nothing processed yet
    arrival = WelcomeCodeArrived.of(item)
    assert arrival is not None

    # The job the receiver queued on the welcome queue; a redelivery of it sends nothing more.
    with CaptureQueriesContext(connection) as lane:
        welcome_code_arrived(tenant.pk, arrival.dump())
    # Every round trip counts in the 20 s: the tenant, code and member, the send recorded
    # already claimed, two token reads, the outcome and its customer (none yet). The governor's
    # counts (database here, Redis in production) are the gateway's, tested there.
    own = [
        q["sql"]
        for q in lane.captured_queries
        if "ratewindow" not in q["sql"] and q["sql"].split()[0] not in ("BEGIN", "COMMIT")
    ]
    assert len(own) == 8, own
    welcome_code_arrived(tenant.pk, arrival.dump())
    (welcome,) = _welcomes(sandbox, corp, ext)
    assert welcome[2]["text"] == {"content": "李雷好"}
    with tenant_context(tenant):
        send = WelcomeSend.objects.get()
        assert (send.status, send.add_id, send.external_userid) == ("sent", None, ext)
        assert not Event.objects.filter(type="welcome.sent").exists()  # no customer yet

    # The add's processing links its record to the send and the customer's timeline shows it.
    outcomes = run_pending_work(wecom_acme)
    assert outcomes["welcomes"] == ["sent"]
    assert len(_welcomes(sandbox, corp, ext)) == 1
    with tenant_context(tenant):
        relation = StaffRelation.objects.get(external_userid=ext)
        assert WelcomeSend.objects.get().add == ChannelAdd.objects.get()
        (event,) = Event.objects.filter(type="welcome.sent")
        assert event.customer_id == relation.customer_id


@pytest.mark.django_db(transaction=True)
def test_daily_caps_move_the_pool_to_backup_staff_in_wecom(
    wecom_acme: Company, sandbox: Sandbox, live_server: Any, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    ops = login.token(wecom_acme["ops"])
    code = _post(
        ops,
        "/api/v1/channels",
        {
            "name": "展会",
            "staff_ids": [wecom_acme["alice"].pk, wecom_acme["bob"].pk],
            "backup_ids": [wecom_acme["carol"].pk],
            "daily_cap": 1,
        },
    ).json()
    way = sandbox.world.corps[corp].contact_ways[code["config_id"]]
    assert way.user == ["alice", "bob"]

    _wire_callbacks(wecom_acme, control, live_server)
    first = control.scan(corp, config_id=code["config_id"])
    assert control.flush_callbacks()
    run_pending_work(wecom_acme)
    assert way.user == ["bob" if first["userid"] == "alice" else "alice"]
    control.scan(corp, config_id=code["config_id"])
    assert control.flush_callbacks()
    run_pending_work(wecom_acme)
    assert way.user == ["carol"]  # both primaries capped: the backup takes over
    assert ops.get(f"/api/v1/channels/{code['id']}").json()["wecom_users"] == ["carol"]

    # A new day resets the caps (the periodic refresh); a member who left is dropped.
    with tenant_context(wecom_acme.tenant):
        ChannelAdd.objects.update(added_at=timezone.now() - timedelta(days=1))
        StaffMember.objects.filter(userid="bob").update(status=StaffStatus.LEFT)
    assert refresh_pools() == 1
    assert way.user == ["alice"]


def test_bad_inputs_are_refused_and_nothing_is_created(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    ops = login.token(wecom_acme["ops"])
    with tenant_context(wecom_acme.tenant):
        StaffMember.objects.filter(userid="bob").update(status=StaffStatus.LEFT)
    alice = wecom_acme["alice"].pk
    cases: list[tuple[dict[str, Any], int]] = [
        ({"name": "长" * 31, "staff_ids": [alice]}, 400),
        ({"name": "x", "staff_ids": [alice], "tag_ids": [999999]}, 404),
        ({"name": "x", "staff_ids": []}, 400),
        ({"name": "x", "staff_ids": [alice, wecom_acme["bob"].pk]}, 400),
        ({"name": "x", "staff_ids": [999999]}, 404),
        ({"name": "x", "staff_ids": [alice], "welcome": {"text": "长" * 1400}}, 400),
        ({"name": "x", "staff_ids": [alice], "welcome": {"text": "你好{会员等级}"}}, 400),
        (
            {
                "name": "x",
                "staff_ids": [alice],
                "welcome": {"attachments": [{"type": "link", "title": "t", "url": "ftp://x"}]},
            },
            400,
        ),
        (
            {"name": "x", "staff_ids": [alice], "welcome": {"attachments": [{"type": "video"}]}},
            400,
        ),
        ({"name": "x", "kind": "single", "staff_ids": [alice], "daily_cap": 5}, 400),
        ({"name": "x", "staff_ids": [alice], "work_start": "09:00:00"}, 400),
    ]
    for body, status in cases:
        response = _post(ops, "/api/v1/channels", body)
        assert response.status_code == status, (body, response.content)
        assert set(response.json()) >= {"code", "message"}
    assert sandbox.world.corps[corp].contact_ways == {}
    with tenant_context(wecom_acme.tenant):
        assert not ChannelCode.objects.exists()


def test_the_quota_is_shown_and_enforced_before_wecom_is_called(
    wecom_acme: Company, sandbox: Sandbox, login: Any, settings: Any
) -> None:
    settings.SIYU_CONTACT_WAY_QUOTA = 1
    corp = wecom_acme.tenant.corp_id
    ops = login.token(wecom_acme["ops"])
    body = {"name": "一号", "staff_ids": [wecom_acme["alice"].pk]}
    assert _post(ops, "/api/v1/channels", body).status_code == 201
    assert ops.get("/api/v1/channels/quota").json() == {"used": 1, "quota": 1, "left": 0}
    refused = _post(ops, "/api/v1/channels", {**body, "name": "二号"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "quota_exceeded"
    assert len(sandbox.world.corps[corp].contact_ways) == 1


def test_edit_pause_and_delete_follow_in_wecom(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    ops = login.token(wecom_acme["ops"])
    code = _post(
        ops, "/api/v1/channels", {"name": "官网", "staff_ids": [wecom_acme["alice"].pk]}
    ).json()
    ways = sandbox.world.corps[corp].contact_ways
    updated = _patch(
        ops,
        f"/api/v1/channels/{code['id']}",
        {"name": "官网咨询", "staff_ids": [wecom_acme["bob"].pk], "skip_verify": False},
    )
    assert updated.status_code == 200, updated.content
    way = ways[code["config_id"]]
    assert (way.remark, way.user, way.skip_verify) == ("官网咨询", ["bob"], False)
    # A refused edit changes nothing, here or in WeCom.
    refused = _patch(ops, f"/api/v1/channels/{code['id']}", {"staff_ids": [], "name": "新名字"})
    assert refused.status_code == 400
    assert (way.remark, way.user) == ("官网咨询", ["bob"])
    assert ops.get(f"/api/v1/channels/{code['id']}").json()["name"] == "官网咨询"

    paused = _post(ops, f"/api/v1/channels/{code['id']}/pause")
    assert paused.json()["status"] == "paused"
    assert _post(ops, f"/api/v1/channels/{code['id']}/resume").json()["status"] == "active"
    assert ops.delete(f"/api/v1/channels/{code['id']}").status_code == 204
    assert code["config_id"] not in ways
    assert ops.get(f"/api/v1/channels/{code['id']}").status_code == 404


def test_the_default_welcome_applies_and_a_closed_window_or_a_spent_code_sends_nothing(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    """Without callbacks wired here: the add is recorded the way the callback handler would."""
    from siyu.customers.services import relation_added

    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    ops = login.token(wecom_acme["ops"])
    default = {"text": "欢迎关注", "attachments": []}
    assert (
        ops.put(
            "/api/v1/channels/welcome-default",
            data=json.dumps(default),
            content_type="application/json",
        ).json()
        == default
    )
    code = _post(ops, "/api/v1/channels", {"name": "海报", "staff_ids": [wecom_acme["alice"].pk]})
    config_id = code.json()["config_id"]
    scans = [control.scan(corp, config_id=config_id) for _ in range(3)]
    with tenant_context(tenant):
        for i, scan in enumerate(scans):
            relation_added(
                staff=wecom_acme["alice"],
                external_userid=scan["external_userid"],
                at=timezone.now() - timedelta(seconds=30 if i == 1 else 0),
                source="wecom",
                state=f"ch:{code.json()['id']}",
                welcome_code=scan["welcome_code"],
                idempotency_key=f"test:{i}",
            )
    # Another app spends the third code first: WeCom answers 41051.
    with WeComClient.for_tenant(tenant) as client:
        client.send_welcome_msg(welcome_code=scans[2]["welcome_code"], text="抢先")
    with tenant_context(tenant):
        for pk in EventDelivery.objects.values_list("pk", flat=True):
            event_delivery_run(delivery_id=pk)
        sends = list(WelcomeSend.objects.order_by("add__added_at", "pk"))
    outcomes = {send_welcome(tenant.pk, s.pk) for s in sends}
    assert outcomes == {"sent", "expired", "already_sent"}
    assert [w[2]["text"] for w in _welcomes(sandbox, corp, scans[0]["external_userid"])] == [
        {"content": "欢迎关注"}
    ]
    assert _welcomes(sandbox, corp, scans[1]["external_userid"]) == []
    with tenant_context(tenant):
        reasons = sorted(e.payload["reason"] for e in Event.objects.filter(type="welcome.failed"))
        assert reasons == ["already_sent:41051", "expired"]
        # A second run of any of them sends nothing more.
        assert {send_welcome(tenant.pk, s.pk) for s in sends} == {"skipped"}


def test_the_console_creates_lists_and_serves_the_qr_of_a_code(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    console = login.session(wecom_acme["ops"])
    created = console.post(
        "/channels/form/",
        {
            "name": "公众号菜单",
            "kind": "multi",
            "staff_ids": [wecom_acme["alice"].pk, wecom_acme["bob"].pk],
            "backup_ids": [wecom_acme["carol"].pk],
            "daily_cap": "20",
            "work_start": "09:00",
            "work_end": "18:00",
            "welcome_text": "你好{客户昵称}",
            "link_title": "门店地址",
            "link_url": "https://example.com/store",
        },
    )
    assert created.status_code == 302, created.content
    with tenant_context(wecom_acme.tenant):
        code = ChannelCode.objects.get(name="公众号菜单")
    assert code.welcome == {
        "text": "你好{客户昵称}",
        "attachments": [{"type": "link", "title": "门店地址", "url": "https://example.com/store"}],
    }
    assert code.config_id in sandbox.world.corps[corp].contact_ways
    page = console.get("/channels/")
    assert "公众号菜单" in page.content.decode()
    qr = console.get(f"/channels/{code.pk}/qr/")
    assert (qr.status_code, qr["Content-Type"]) == (200, "image/png")
    # A bad form changes nothing and says why.
    refused = console.post("/channels/form/", {"name": "空池", "kind": "multi"}, follow=True)
    assert "请至少选择一名接待成员" in refused.content.decode()
    with tenant_context(wecom_acme.tenant):
        assert ChannelCode.objects.count() == 1


def _add_through(company: Company, code_id: int, scan: dict[str, Any], key: str) -> None:
    """Record the add as the callback handler does, and run its deliveries (their commit-time
    welcome send does not fire inside the test's transaction)."""
    from siyu.customers.services import relation_added

    with tenant_context(company.tenant):
        relation_added(
            staff=company[scan["userid"]],
            external_userid=scan["external_userid"],
            at=timezone.now(),
            source="wecom",
            state=f"ch:{code_id}",
            welcome_code=scan["welcome_code"],
            idempotency_key=key,
        )
        pending = EventDelivery.objects.filter(status=DeliveryStatus.PENDING)
        for pk in list(pending.values_list("pk", flat=True)):
            event_delivery_run(delivery_id=pk)


def test_a_busy_wecom_is_retried_inside_the_window_and_a_paused_code_only_attributes(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    ops = login.token(wecom_acme["ops"])
    tags = _tags(ops)
    code = _post(
        ops,
        "/api/v1/channels",
        {
            "name": "门店",
            "staff_ids": [wecom_acme["alice"].pk],
            "tag_ids": [tags[0]["id"]],
            "welcome": {"text": "欢迎"},
        },
    ).json()
    first = control.scan(corp, config_id=code["config_id"])
    _add_through(wecom_acme, code["id"], first, "test:busy")
    with tenant_context(tenant):
        send = WelcomeSend.objects.get()

    control.set_faults(busy_rate=1.0, paths=["externalcontact/send_welcome_msg"])
    assert send_welcome(tenant.pk, send.pk) == "retry"
    with tenant_context(tenant):
        send.refresh_from_db()
    assert (send.status, send.attempts) == (WelcomeStatus.PENDING, 1)
    assert _welcomes(sandbox, corp, first["external_userid"]) == []
    control.set_faults(busy_rate=0.0, paths=[])
    assert send_welcome(tenant.pk, send.pk) == "sent"
    assert len(_welcomes(sandbox, corp, first["external_userid"])) == 1

    # Paused: the add is still the channel's, but no welcome message and no tags.
    assert _post(ops, f"/api/v1/channels/{code['id']}/pause").status_code == 200
    second = control.scan(corp, config_id=code["config_id"])
    _add_through(wecom_acme, code["id"], second, "test:paused")
    with tenant_context(tenant):
        assert ChannelAdd.objects.count() == 2
        assert WelcomeSend.objects.count() == 1
        relation = StaffRelation.objects.get(external_userid=second["external_userid"])
        assert not CustomerTag.objects.filter(customer_id=relation.customer_id).exists()
    assert ops.get(f"/api/v1/channels/{code['id']}").json()["adds_total"] == 2


def test_every_queue_the_lanes_use_is_consumed_by_the_embedded_worker(settings: Any) -> None:
    from siyu.core.events import get_subscriber

    route_add = get_subscriber("channels.route_add")
    assert route_add is not None and route_add.queue == "channels"
    assert settings.CELERY_TASK_ROUTES["siyu.wecom.welcome_code_arrived"]["queue"] == "welcome"
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed == {"welcome", "channels", "callbacks"}
    assert routed | {route_add.queue, settings.CELERY_TASK_DEFAULT_QUEUE} == set(
        settings.SIYU_QUEUES
    )


def test_a_code_can_invite_into_a_group_chat_through_its_welcome_message(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    from siyu.wecom.sync.services import reconcile

    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    chat_id = control.simulate(corp, "create_group", owner="alice", name="新客福利群")["chat_id"]
    assert reconcile(tenant).status == "done"
    ops = login.token(wecom_acme["ops"])
    unknown = _post(
        ops,
        "/api/v1/channels",
        {"name": "拉群", "staff_ids": [wecom_acme["alice"].pk], "group_chat_id": "wrnope"},
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_group")
    assert sandbox.world.corps[corp].contact_ways == {}

    code = _post(
        ops,
        "/api/v1/channels",
        {
            "name": "拉群",
            "staff_ids": [wecom_acme["alice"].pk],
            "group_chat_id": chat_id,
            "welcome": {"text": "欢迎进群领福利"},
        },
    ).json()
    (join,) = sandbox.world.corps[corp].join_ways.values()
    assert (join["chat_id_list"], join["state"]) == ([chat_id], f"ch:{code['id']}")
    assert code["join_qr_code"] == join["qr_code"]
    assert ops.get("/api/v1/channels/quota").json()["used"] == 2  # both count against WeCom's

    scan = control.scan(corp, config_id=code["config_id"])
    _add_through(wecom_acme, code["id"], scan, "test:group")
    with tenant_context(tenant):
        send = WelcomeSend.objects.get()
    assert send_welcome(tenant.pk, send.pk) == "sent"
    (welcome,) = _welcomes(sandbox, corp, scan["external_userid"])
    assert welcome[2]["attachments"] == [
        {"msgtype": "image", "image": {"pic_url": f"{sandbox.base_url}{join['qr_code']}"}}
    ]

    # Stopping the invitation deletes the join way; inviting again makes a new one.
    stopped = _patch(ops, f"/api/v1/channels/{code['id']}", {"group_chat_id": ""}).json()
    assert (stopped["group_chat_id"], stopped["join_qr_code"]) == ("", "")
    assert sandbox.world.corps[corp].join_ways == {}
    again = _patch(ops, f"/api/v1/channels/{code['id']}", {"group_chat_id": chat_id}).json()
    (join,) = sandbox.world.corps[corp].join_ways.values()
    assert again["join_qr_code"] == join["qr_code"]

    assert ops.delete(f"/api/v1/channels/{code['id']}").status_code == 204
    assert sandbox.world.corps[corp].join_ways == {}
    assert sandbox.world.corps[corp].contact_ways == {}
