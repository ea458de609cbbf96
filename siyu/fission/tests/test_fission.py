"""Fission campaigns against the sandbox over real HTTP: customers open the H5 page (WeChat
OAuth), get a personal code, and invitees scan it; WeCom's callbacks go through the inbox and
the event log to the counting, exactly as in production."""

import json
from datetime import timedelta
from functools import partial
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.utils import timezone
from PIL import Image

from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.customers.models import CustomerIdentity
from siyu.fission.models import (
    Campaign,
    Invite,
    Notice,
    NoticeAudience,
    NoticeStatus,
    Participant,
    RewardGrant,
    RewardTier,
)
from siyu.fission.services import notice_send
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.concurrency import race
from siyu.testing.stories import Company
from siyu.wecom.callback.inbox import inbox_process
from siyu.wecom.models import CallbackInbox, InboxStatus
from siyu.wecom.tasks import enrich_customer
from siyu.workspace.models import StaffTask

APPID = "wx_acme_mp"
SECRET = "acme-mp-secret"  # noqa: S105
LAYOUT = {
    "avatar": {"x": 10, "y": 10, "size": 60},
    "nickname": {"x": 80, "y": 20, "size": 24},
    "qr": {"x": 100, "y": 200, "size": 160},
}

pytestmark = pytest.mark.django_db(transaction=True)


def _png(width: int = 400, height: int = 600) -> bytes:
    out = BytesIO()
    Image.new("RGB", (width, height), "orange").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def fx(wecom_acme: Company, sandbox: Sandbox, live_server: Any) -> Company:
    """acme with callbacks wired to the live server and its official account for H5 OAuth."""
    tenant = wecom_acme.tenant
    tenant.wechat_appid = APPID
    tenant.wechat_secret = SECRET
    tenant.wechat_oauth_url = sandbox.base_url + "/connect/oauth2/authorize"
    tenant.wechat_api_base_url = sandbox.base_url + "/"
    tenant.save()
    control = SandboxControl(sandbox.base_url)
    control.register_wechat_app(APPID, SECRET)
    control.create_corp(
        tenant.corp_id,
        tenant.contact_secret,
        callback_url=f"{live_server.url}/wecom/callback/{tenant.slug}/",
    )
    return wecom_acme


def _campaign(login: Any, company: Company, **over: Any) -> dict[str, Any]:
    now = timezone.now()
    body = {
        "kind": "task",
        "name": "老带新",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=7)).isoformat(),
        "staff_ids": [company["alice"].pk, company["bob"].pk],
        "tiers": [
            {"threshold": 3, "kind": "coupon", "payload": "满100减20", "stock": 5},
            {"threshold": 5, "kind": "staff_task", "payload": "定制礼盒", "stock": 1},
        ],
        **over,
    }
    client = login.token(company["ops"])
    response = client.post(
        "/api/v1/fission/campaigns", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 201, response.content
    campaign: dict[str, Any] = response.json()
    poster = client.post(
        f"/api/v1/fission/campaigns/{campaign['id']}/poster",
        {
            "artwork": SimpleUploadedFile("art.png", _png(), "image/png"),
            "layout": json.dumps(LAYOUT),
        },
    )
    assert poster.status_code == 200, poster.content
    return campaign


def _open(client: Client, path: str) -> Any:
    """Open an H5 page inside "WeChat": through OAuth on first sight, then the page itself."""
    response = client.get(path)
    if response.status_code != 302:
        return response
    start = client.get(response["Location"])
    assert start.status_code == 302, start.content
    authorize = httpx.get(start["Location"].split("#")[0], follow_redirects=False)
    back = urlsplit(authorize.headers["location"])
    done = client.get(back.path, parse_qs(back.query))
    assert done.status_code == 302, done.content
    return client.get(done["Location"])


def _join(
    company: Company, sandbox: Sandbox, campaign_id: int, unionid: str, name: str
) -> tuple[Client, Participant]:
    SandboxControl(sandbox.base_url).set_visitor(APPID, unionid=unionid, name=name)
    client = Client()
    page = _open(client, f"/h5/acme/fission/{campaign_id}/")
    assert page.status_code == 200, page.content
    with tenant_context(company.tenant):
        identity = CustomerIdentity.objects.get(kind="unionid", value=unionid)
        participant = Participant.objects.get(
            campaign_id=campaign_id, customer_id=identity.customer_id
        )
    return client, participant


def _pump(company: Company, sandbox: Sandbox, workers: int = 1) -> None:
    """Deliver WeCom's callbacks and run the event log's deliveries until nothing is left."""
    assert SandboxControl(sandbox.base_url).flush_callbacks()
    for _round in range(6):
        inbox = _inbox(company)
        with tenant_context(company.tenant):
            due = list(
                EventDelivery.objects.filter(status=DeliveryStatus.PENDING)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        if not inbox and not due:
            return
        _run_all(due, workers)


def _inbox(company: Company) -> list[int]:
    """Process the stored callbacks, as the inbox worker does."""
    with tenant_context(company.tenant):
        inbox = list(
            CallbackInbox.objects.filter(status=InboxStatus.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    for pk in inbox:
        inbox_process(inbox_id=pk)
    return inbox


def _run_all(delivery_ids: list[int], workers: int) -> None:
    if workers == 1:
        for pk in delivery_ids:
            event_delivery_run(delivery_id=pk)
        return
    chunks = [delivery_ids[i::workers] for i in range(workers)]
    race([partial(_run_chunk, chunk) for chunk in chunks])


def _run_chunk(delivery_ids: list[int]) -> None:
    for pk in delivery_ids:
        event_delivery_run(delivery_id=pk)


def _add(
    sandbox: Sandbox, company: Company, state: str, unionid: str, userid: str = "alice"
) -> str:
    """A WeChat user adds ``userid`` through the code with ``state`` (a scan that landed on
    that member)."""
    result = SandboxControl(sandbox.base_url).simulate(
        company.tenant.corp_id, "add", userid=userid, unionid=unionid, name=unionid, state=state
    )
    return str(result["external_userid"])


def _statuses(company: Company, participant: Participant) -> dict[str, str]:
    with tenant_context(company.tenant):
        return {
            str(i.invitee): i.status
            for i in Invite.objects.filter(participant=participant).select_related("invitee")
        }


def test_three_new_friends_complete_a_tier_once_and_everyone_is_told(
    fx: Company, sandbox: Sandbox, login: Any
) -> None:
    campaign = _campaign(login, fx)
    client, anna = _join(fx, sandbox, campaign["id"], "u-anna", "Anna")
    corp = sandbox.world.corps[fx.tenant.corp_id]
    way = corp.contact_ways[anna.config_id]
    assert way.state == f"fx:{campaign['id']}:{anna.pk}"
    assert sorted(way.user) == ["alice", "bob"]

    control = SandboxControl(sandbox.base_url)
    for name in ("u-ben", "u-cai", "u-dan"):
        control.scan(fx.tenant.corp_id, state=anna.state, unionid=name, name=name)
    _pump(fx, sandbox)
    # A fourth scan after completion, and the same callbacks pumped again: nothing doubles.
    control.scan(fx.tenant.corp_id, state=anna.state, unionid="u-eve", name="u-eve")
    _pump(fx, sandbox)

    with tenant_context(fx.tenant):
        anna.refresh_from_db()
        assert anna.counted == 4
        grants = list(RewardGrant.objects.filter(participant=anna))
        assert [(g.tier.threshold, g.kind, g.in_stock) for g in grants] == [(3, "coupon", True)]
        tier = RewardTier.objects.get(campaign_id=campaign["id"], threshold=3)
        assert (tier.stock, tier.issued) == (4, 1)
    assert set(_statuses(fx, anna).values()) == {"counted"}

    # The H5 progress page lists who counted and what is left; the poster is a PNG.
    page = client.get(f"/h5/acme/fission/{campaign['id']}/").content.decode()
    for name in ("u-ben", "u-cai", "u-dan", "u-eve"):
        assert name in page
    assert "已有 4 位好友助力" in page and "还差 1 人" in page
    poster = client.get(f"/h5/acme/fission/{campaign['id']}/poster.png")
    image = Image.open(BytesIO(poster.getvalue()))
    assert (image.format, image.size) == ("PNG", (400, 600))
    assert Client().get(f"/h5/acme/fission/{campaign['id']}/poster.png").status_code == 404

    # The receiving member is told, naming the participant; Anna's progress goes to the
    # member who serves her, to relay (WeCom cannot message a customer from a server).
    with tenant_context(fx.tenant):
        anna_name = str(Participant.objects.get(pk=anna.pk).customer)
        staff_notes = Notice.objects.filter(audience=NoticeAudience.STAFF)
        assert staff_notes.count() == 4
        assert all(anna_name in n.text for n in staff_notes)
        pending = list(
            Notice.objects.filter(status=NoticeStatus.PENDING).values_list("pk", flat=True)
        )
        results = [notice_send(notice_id=pk) for pk in pending]
        assert set(results) == {"sent"}
        assert [notice_send(notice_id=pk) for pk in pending] == ["skipped"] * len(pending)
    messages = [m["text"]["content"] for m in corp.app_messages]
    assert len(messages) == len(pending)
    assert any("恭喜达成 3 人" in m and m.startswith("请转告客户") for m in messages)

    # Ben joins too: the referral tree nests him under Anna.
    _join(fx, sandbox, campaign["id"], "u-ben", "Ben")
    tree = login.token(fx["ops"]).get(f"/api/v1/fission/campaigns/{campaign['id']}/tree").json()
    assert [(n["name"], [c["name"] for c in n["children"]]) for n in tree] == [
        (anna_name, ["u-ben"])
    ]


def test_self_invites_repeat_invitees_and_existing_friends_do_not_count(
    fx: Company, sandbox: Sandbox, login: Any
) -> None:
    with tenant_context(fx.tenant):
        group = TagGroup.objects.create(name="渠道", wecom_id="g-channel")
        tag = Tag.objects.create(group=group, name="老带新", wecom_id="t-fission")
    campaign = _campaign(login, fx, tag_ids=[tag.pk])
    _client, anna = _join(fx, sandbox, campaign["id"], "u-anna", "Anna")
    _client, bea = _join(fx, sandbox, campaign["id"], "u-bea", "Bea")
    control = SandboxControl(sandbox.base_url)
    # Carl has been carol's customer for a while.
    control.simulate(fx.tenant.corp_id, "add", userid="carol", unionid="u-carl", name="u-carl")
    _pump(fx, sandbox)

    _add(sandbox, fx, anna.state, "u-anna")  # Anna scans her own code
    _add(sandbox, fx, anna.state, "u-carl")  # an existing friend of another member
    _add(sandbox, fx, anna.state, "u-new")  # a new friend: counts
    # Processed before the repeat below: the sandbox delivers callbacks concurrently, and two
    # adds in flight at once have no order for the first sighting to follow.
    _pump(fx, sandbox)
    _add(sandbox, fx, bea.state, "u-new", userid="bob")  # the same person again, via Bea
    _pump(fx, sandbox)

    assert _statuses(fx, anna) == {"Anna": "self", "u-carl": "not_new", "u-new": "counted"}
    assert _statuses(fx, bea) == {"u-new": "repeat"}
    with tenant_context(fx.tenant):
        anna.refresh_from_db()
        bea.refresh_from_db()
        assert (anna.counted, bea.counted) == (1, 0)
        # Only the counted invitee carries the campaign's channel tag, on alice's relation.
        tagged = CustomerTag.objects.filter(tag=tag).select_related("customer", "staff")
        assert [
            (str(t.customer), t.staff.userid if t.staff else None, t.source) for t in tagged
        ] == [("u-new", "alice", "channel")]
    funnel = login.token(fx["ops"]).get(f"/api/v1/fission/campaigns/{campaign['id']}").json()
    assert {k: funnel["funnel"][k] for k in ("adds", "counted", "self", "not_new", "repeat")} == {
        "adds": 4,
        "counted": 1,
        "self": 1,
        "not_new": 1,
        "repeat": 1,
    }


def test_an_invitee_who_deletes_within_the_window_is_subtracted_and_the_participant_told(
    fx: Company, sandbox: Sandbox, login: Any
) -> None:
    campaign = _campaign(login, fx)
    client, anna = _join(fx, sandbox, campaign["id"], "u-anna", "Anna")
    exts = [_add(sandbox, fx, anna.state, u) for u in ("u-a", "u-b", "u-c")]
    _pump(fx, sandbox)
    control = SandboxControl(sandbox.base_url)
    control.simulate(fx.tenant.corp_id, "customer_delete", userid="alice", external_userid=exts[0])
    control.simulate(fx.tenant.corp_id, "staff_delete", userid="alice", external_userid=exts[1])
    _pump(fx, sandbox)

    assert _statuses(fx, anna) == {"u-a": "deleted", "u-b": "deleted", "u-c": "counted"}
    with tenant_context(fx.tenant):
        anna.refresh_from_db()
        assert anna.counted == 1
        # The tier was reached before the deletions: the reward stays issued, once.
        assert RewardGrant.objects.filter(participant=anna).count() == 1
        told = Notice.objects.filter(participant=anna, audience=NoticeAudience.PARTICIPANT)
        assert sum("不再计入" in n.text for n in told) == 2
    assert "已删除（扣减）" in client.get(f"/h5/acme/fission/{campaign['id']}/").content.decode()

    # Outside the window (now zero hours) a deletion no longer subtracts.
    patched = login.token(fx["ops"]).patch(
        f"/api/v1/fission/campaigns/{campaign['id']}",
        data=json.dumps({"delete_window_hours": 0}),
        content_type="application/json",
    )
    assert patched.status_code == 200 and patched.json()["delete_window_hours"] == 0
    late = _add(sandbox, fx, anna.state, "u-d")
    _pump(fx, sandbox)
    control.simulate(
        fx.tenant.corp_id,
        "customer_delete",
        userid="alice",
        external_userid=late,
        at=int(sandbox.world.now()) + 5,
    )
    _pump(fx, sandbox)
    assert _statuses(fx, anna)["u-d"] == "counted"
    with tenant_context(fx.tenant):
        anna.refresh_from_db()
        assert anna.counted == 2


@pytest.mark.sandbox(callback_workers={"sqlite": 1, "postgresql": 4})
def test_concurrent_adds_are_counted_exactly(fx: Company, sandbox: Sandbox, login: Any) -> None:
    campaign = _campaign(login, fx)
    _client, anna = _join(fx, sandbox, campaign["id"], "u-anna", "Anna")
    control = SandboxControl(sandbox.base_url)
    at = int(sandbox.world.now())
    names = [f"u-rush-{i}" for i in range(16)]
    results = control.batch(
        fx.tenant.corp_id,
        [
            (
                "add",
                {"userid": ("alice", "bob")[i % 2], "unionid": u, "state": anna.state, "at": at},
            )
            for i, u in enumerate(names)
        ],
    )
    assert control.flush_callbacks()
    _inbox(fx)
    # The profile lane reads each new contact (unionid) first, as after every add; then the
    # adds' deliveries run on parallel workers (on PostgreSQL) and race for Anna's count.
    for result in results:
        enrich_customer(fx.tenant.pk, result["result"]["external_userid"])
    _pump(fx, sandbox, workers=4 if connection.vendor == "postgresql" else 1)

    with tenant_context(fx.tenant):
        anna.refresh_from_db()
        assert anna.counted == 16
        assert Invite.objects.filter(participant=anna, status="counted").count() == 16
        assert RewardGrant.objects.filter(participant=anna).count() == 2
        tiers = {t.threshold: (t.stock, t.issued) for t in RewardTier.objects.all()}
        assert tiers == {3: (4, 1), 5: (0, 1)}
        # The staff_task tier became a task for a member of the pool.
        task = StaffTask.objects.get(kind="fission", customer_id=anna.customer_id)
        assert task.staff.userid in {"alice", "bob"} and "定制礼盒" in task.title
        assert task.body == "定制礼盒" and task.status == "open"

    # Bea reaches the gift tier after its stock ran out: recorded, told, never below zero.
    _client, bea = _join(fx, sandbox, campaign["id"], "u-bea", "Bea")
    for i in range(5):
        _add(sandbox, fx, bea.state, f"u-late-{i}")
    _pump(fx, sandbox)
    with tenant_context(fx.tenant):
        grants = RewardGrant.objects.filter(participant=bea).order_by("tier__threshold")
        assert [(g.tier.threshold, g.in_stock) for g in grants] == [(3, True), (5, False)]
        assert RewardTier.objects.get(threshold=5).stock == 0
        assert not StaffTask.objects.filter(customer_id=bea.customer_id).exists()
        told = Notice.objects.filter(participant=bea, audience=NoticeAudience.PARTICIPANT)
        assert any("奖励已发完" in n.text for n in told)


def test_bad_campaign_inputs_are_refused_and_nothing_is_created(fx: Company, login: Any) -> None:
    client = login.token(fx["ops"])
    now = timezone.now()
    tier = {"threshold": 3, "kind": "link", "payload": "https://x.test/r", "stock": 1}
    good: dict[str, Any] = {
        "kind": "task",
        "name": "x",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "staff_ids": [fx["alice"].pk],
        "tiers": [tier],
    }
    cases: dict[str, dict[str, Any]] = {
        "invalid_period": {"ends_at": (now - timedelta(days=1)).isoformat()},
        "no_stock": {"tiers": [{**tier, "stock": 0}]},
        "unknown_staff": {"staff_ids": [999999]},
        "unknown_tag": {"tag_ids": [999999]},
    }
    for code, change in cases.items():
        response = client.post(
            "/api/v1/fission/campaigns",
            data=json.dumps({**good, **change}),
            content_type="application/json",
        )
        assert (response.status_code, response.json()["code"]) == (400, code), response.content
    group_without_chats = client.post(
        "/api/v1/fission/campaigns",
        data=json.dumps({**good, "kind": "group"}),
        content_type="application/json",
    )
    assert group_without_chats.status_code == 400
    with tenant_context(fx.tenant):
        assert Campaign.objects.count() == 0 and RewardTier.objects.count() == 0

    # A poster template with a missing asset or a position off the artwork: refused, unchanged.
    created = client.post(
        "/api/v1/fission/campaigns", data=json.dumps(good), content_type="application/json"
    ).json()
    path = f"/api/v1/fission/campaigns/{created['id']}/poster"
    no_art = client.post(path, {"layout": json.dumps(LAYOUT)})
    assert (no_art.status_code, no_art.json()["code"]) == (400, "poster_incomplete")
    no_qr = {k: v for k, v in LAYOUT.items() if k != "qr"}
    missing = client.post(
        path, {"artwork": SimpleUploadedFile("a.png", _png()), "layout": json.dumps(no_qr)}
    )
    assert (missing.status_code, missing.json()["code"]) == (400, "poster_incomplete")
    off = {**LAYOUT, "qr": {"x": 390, "y": 10, "size": 100}}
    outside = client.post(
        path, {"artwork": SimpleUploadedFile("a.png", _png()), "layout": json.dumps(off)}
    )
    assert outside.status_code == 400
    not_image = client.post(
        path, {"artwork": SimpleUploadedFile("a.png", b"not a png"), "layout": json.dumps(LAYOUT)}
    )
    assert (not_image.status_code, not_image.json()["code"]) == (400, "poster_invalid")
    with tenant_context(fx.tenant):
        assert not Campaign.objects.get(pk=created["id"]).poster_artwork

    # The console form says why and creates nothing.
    console = login.session(fx["ops"])
    form = {
        "kind": "task",
        "name": "表单活动",
        "starts_at": "2030-02-01T10:00",
        "ends_at": "2030-01-01T10:00",
        "staff_ids": [fx["alice"].pk],
        "tier0_threshold": "3",
        "tier0_kind": "coupon",
        "tier0_payload": "券",
        "tier0_stock": "2",
    }
    refused = console.post("/acquire/fission/new/", form)
    assert refused.status_code == 200 and "结束时间必须晚于开始时间" in refused.content.decode()
    accepted = console.post(
        "/acquire/fission/new/",
        {**form, "ends_at": "2030-03-01T10:00", "artwork": SimpleUploadedFile("a.png", _png())},
    )
    assert accepted.status_code == 200 and "海报模板缺少" in accepted.content.decode()
    with tenant_context(fx.tenant):
        assert not Campaign.objects.filter(name="表单活动").exists()

    # Editing from the detail page: an end before the start is refused and changes nothing.
    detail = f"/acquire/fission/{created['id']}/"
    bad_edit = console.post(detail, {"name": "改名", "ends_at": "2000-01-01T00:00"}, follow=True)
    assert "结束时间必须晚于开始时间" in bad_edit.content.decode()
    with tenant_context(fx.tenant):
        assert Campaign.objects.get(pk=created["id"]).name == "x"
    good_edit = console.post(detail, {"name": "改名", "delete_window_hours": "24"})
    assert good_edit.status_code == 302
    with tenant_context(fx.tenant):
        edited = Campaign.objects.get(pk=created["id"])
        assert (edited.name, edited.delete_window_hours) == ("改名", 24)


def test_a_broken_poster_does_not_stop_the_participant_or_the_others(
    fx: Company, sandbox: Sandbox, login: Any
) -> None:
    campaign = _campaign(login, fx)
    with tenant_context(fx.tenant):
        stored = Campaign.objects.get(pk=campaign["id"])
        # The asset vanished from storage behind Siyu's back.
        stored.poster_artwork.storage.delete(str(stored.poster_artwork.name))
    client, anna = _join(fx, sandbox, campaign["id"], "u-anna", "Anna")
    _client, bea = _join(fx, sandbox, campaign["id"], "u-bea", "Bea")
    assert "海报生成中" in client.get(f"/h5/acme/fission/{campaign['id']}/").content.decode()
    _add(sandbox, fx, anna.state, "u-x")
    _add(sandbox, fx, bea.state, "u-y")
    _pump(fx, sandbox)

    with tenant_context(fx.tenant):
        anna.refresh_from_db()
        bea.refresh_from_db()
        assert (anna.counted, bea.counted) == (1, 1)
        assert anna.poster_error == bea.poster_error == "海报底图已丢失"
    detail = login.session(fx["ops"]).get(f"/acquire/fission/{campaign['id']}/")
    assert detail.status_code == 200 and "海报底图已丢失" in detail.content.decode()


def test_group_fission_fills_groups_in_order_and_moves_on_when_one_is_full(
    fx: Company, sandbox: Sandbox, login: Any
) -> None:
    control = SandboxControl(sandbox.base_url)
    corp = fx.tenant.corp_id
    first = control.simulate(corp, "create_group", owner="alice", name="福利1群")["chat_id"]
    second = control.simulate(corp, "create_group", owner="alice", name="福利2群")["chat_id"]
    _pump(fx, sandbox)
    campaign = _campaign(
        login,
        fx,
        kind="group",
        group_chats=[
            {"chat_id": first, "name": "福利1群", "capacity": 3},
            {"chat_id": second, "name": "福利2群", "capacity": 200},
        ],
    )
    client, anna = _join(fx, sandbox, campaign["id"], "u-anna", "Anna")
    path = f"/h5/acme/fission/{campaign['id']}/"
    assert "当前活动群：福利1群" in client.get(path).content.decode()

    for unionid in ("u-g1", "u-g2"):  # the owner and two customers fill the first group
        control.simulate(corp, "join_group", chat_id=first, unionid=unionid, name=unionid)
    _add(sandbox, fx, anna.state, "u-g3")  # invitees count as in 任务宝
    _pump(fx, sandbox)

    assert "当前活动群：福利2群" in client.get(path).content.decode()
    assert _statuses(fx, anna) == {"u-g3": "counted"}


def test_a_campaign_that_has_not_started_cannot_be_joined(
    fx: Company, sandbox: Sandbox, login: Any
) -> None:
    later = timezone.now() + timedelta(days=1)
    campaign = _campaign(
        login,
        fx,
        starts_at=later.isoformat(),
        ends_at=(later + timedelta(days=1)).isoformat(),
    )
    SandboxControl(sandbox.base_url).set_visitor(APPID, unionid="u-early", name="Early")
    page = _open(Client(), f"/h5/acme/fission/{campaign['id']}/")
    assert page.status_code == 400 and "活动未开始或已结束" in page.content.decode()
    with tenant_context(fx.tenant):
        assert not Participant.objects.exists()
    assert sandbox.world.corps[fx.tenant.corp_id].contact_ways == {}
