"""End-to-end journeys in Chromium: people use the console, the staff workspace and the H5 pages
in a real browser; the WeCom sandbox plays the customers' WeCom side and WeChat Pay; the
workers' steps run in the test thread (siyu.testing.work), in the order the queues run them."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from siyu.channels.models import ChannelCode
from siyu.content.services import item_create
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.e2e.conftest import screenshot, sign_in
from siyu.masssend import services as masssend
from siyu.masssend.models import Batch, MassSend
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.shop.models import Order, OrderStatus, PaymentAccount, Product, Sku
from siyu.shop.tests.conftest import API_V3_KEY, MCHID
from siyu.sop import engine as sop_engine
from siyu.sop import services as sops
from siyu.tags.models import CustomerTag, TagSource
from siyu.tags.services import tags_apply
from siyu.testing.stories import PASSWORD, Company
from siyu.testing.work import queued_tasks_purge, run_queued_tasks
from siyu.transfers.tasks import poll_open

APPID, APP_SECRET = "wx_acme_mp", "acme-mp-secret"
# Due within the hour: the workspace lists what is due by tonight (local time).
TASK = {"title": "客户读了新品手册，去跟进", "due_hours": 1}
pytestmark = pytest.mark.django_db(transaction=True)


def _wechat(company: Company, sandbox: Sandbox, control: SandboxControl) -> None:
    """acme's official account (WeChat OAuth for H5 pages) and merchant account (WeChat Pay),
    both at the sandbox."""
    tenant = company.tenant
    tenant.wechat_appid, tenant.wechat_secret = APPID, APP_SECRET
    tenant.wechat_oauth_url = sandbox.base_url + "/connect/oauth2/authorize"
    tenant.wechat_api_base_url = sandbox.base_url + "/"
    tenant.save()
    control.register_wechat_app(APPID, APP_SECRET)
    control.add_pay_merchant(MCHID, APPID, API_V3_KEY)
    with tenant_context(tenant):
        PaymentAccount.objects.create(
            mchid=MCHID, appid=APPID, api_v3_key=API_V3_KEY, api_base_url=sandbox.base_url + "/"
        )


def _api(client: Any, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def control(
    wecom_acme: Company, sandbox: Sandbox, live_server: Any, settings: Any
) -> Iterator[SandboxControl]:
    """The sandbox's control API, with acme's callbacks going to the live server, links and
    notify URLs pointing at it, and no jobs left on the queues by earlier tests."""
    settings.SITE_URL = live_server.url
    queued_tasks_purge()
    tenant = wecom_acme.tenant
    with SandboxControl(sandbox.base_url) as control:
        control.create_corp(
            tenant.corp_id,
            tenant.contact_secret,
            callback_url=f"{live_server.url}/wecom/callback/{tenant.slug}/",
        )
        yield control


def _added(control: SandboxControl, company: Company, userid: str, names: list[str]) -> list[int]:
    """Customers add ``userid`` in WeCom; the callbacks are processed: their customer ids."""
    corp = company.tenant.corp_id
    exts = [control.simulate(corp, "add", userid=userid, name=n)["external_userid"] for n in names]
    assert control.flush_callbacks()
    run_queued_tasks()
    with tenant_context(company.tenant):
        ids = dict(StaffRelation.objects.values_list("external_userid", "customer_id"))
    return [ids[ext] for ext in exts]


def test_from_channel_code_to_paid_order(
    wecom_acme: Company,
    sandbox: Sandbox,
    control: SandboxControl,
    login: Any,
    new_page: Callable[..., Page],
) -> None:
    tenant, corp = wecom_acme.tenant, wecom_acme.tenant.corp_id
    _wechat(wecom_acme, sandbox, control)
    # What the operator prepared earlier: tags (made in WeCom too), an article, a product, and
    # an SOP that gives the owner a follow-up task when a customer reads content.
    ops_api = login.token(wecom_acme["ops"])
    _api(ops_api, "/api/v1/tags/groups", {"name": "渠道", "tags": ["地推", "展会"]})
    with tenant_context(tenant):
        article = item_create(
            actor=wecom_acme["ops"], kind="article", title="春季新品手册", body="<p>新品到了</p>"
        )
        product = Product.objects.create(name="龙井茶")
        Sku.objects.create(product=product, name="250g", price_fen=12800, stock=10)
        sop = sops.sop_create(
            actor=wecom_acme["ops"],
            name="读后跟进",
            trigger_kind="event",
            trigger={"event_type": "content.read"},
            steps=[{"actions": [{"type": "task", "config": TASK}]}],
        )
        sops.sop_activate(actor=wecom_acme["ops"], sop_id=sop.pk)

    # 1. The operator creates a channel code for alice with both tags and a welcome message.
    ops = new_page()
    sign_in(ops, "acme-ops", PASSWORD)
    ops.goto("/channels/form/")
    ops.get_by_label("名称").fill("门店地推")
    ops.locator("select[name=staff_ids]").select_option(label="Alice")
    ops.locator("select[name=tag_ids]").select_option(label=["渠道 / 地推", "渠道 / 展会"])
    ops.get_by_placeholder("欢迎语", exact=False).fill("{客户昵称}你好，我是{员工姓名}")
    ops.get_by_role("button", name="保存").click()
    row = ops.get_by_role("row", name="门店地推")
    expect(row).to_contain_text("地推")
    expect(row).to_contain_text("展会")
    screenshot(ops, "console-channel-code", readme=True)

    # 2. A customer scans it in WeCom; the callback reaches the live server, the workers run.
    with tenant_context(tenant):
        config_id = ChannelCode.objects.get(name="门店地推").config_id
    scanned = control.scan(corp, config_id=config_id, name="王小明", unionid="u-wang")
    assert control.flush_callbacks()
    run_queued_tasks()
    ext = scanned["external_userid"]
    received = sandbox.world.corps[corp].received.get(ext, [])
    assert [m[2]["text"] for m in received] == [{"content": "王小明你好，我是Alice"}]

    ops.goto("/customers/")
    ops.get_by_role("link", name="王小明").click()
    expect(ops.locator("body")).to_contain_text("渠道/地推")
    expect(ops.locator("body")).to_contain_text("渠道/展会")

    # 3. The operator mass-sends the article to everyone tagged 地推; alice confirms in WeCom.
    ops.goto("/operate/masssends/new/")
    ops.get_by_label("名称").fill("春季新品")
    ops.locator("select[name=audience_kind]").select_option("tags")
    ops.locator("select[name=tag_ids]").select_option(label="渠道 / 地推")
    ops.get_by_label("文本").fill("春季新品上市，点开看看")
    ops.get_by_label("内容库素材 ID", exact=False).fill(str(article.pk))
    ops.get_by_role("button", name="预览").click()
    expect(ops.locator("#preview")).to_contain_text("将收到 1 位")
    ops.get_by_role("button", name="确认创建").click()
    expect(ops.get_by_role("heading", name="春季新品")).to_be_visible()
    # The worker plans the send and creates alice's task in WeCom.
    assert run_queued_tasks() == ["siyu.masssend.dispatch", "siyu.masssend.send_batch"]
    with tenant_context(tenant):
        send = MassSend.objects.get()
        (batch,) = Batch.objects.filter(mass_send=send)
    control.simulate(corp, "confirm_mass_send", msgid=batch.msgid, userid="alice")
    with tenant_context(tenant):  # the periodic sync reads the confirmation back
        assert masssend.mass_send_sync(mass_send_id=send.pk) == 1
    (sent,) = sandbox.world.corps[corp].mass_sends.values()
    link = sent.attachments[-1]["link"]["url"]

    # 4. The customer opens the article in WeChat (identified through OAuth) and reads it.
    control.set_visitor(APPID, unionid="u-wang")
    customer = new_page(mobile=True)
    customer.clock.install()
    customer.goto(link)
    expect(customer.get_by_role("heading", name="春季新品手册")).to_be_visible()
    customer.clock.run_for(5000)  # five seconds of reading (the page counts them)
    # Leaving the page reports the read. Headless Chromium never hides a page, and Playwright
    # does not see the beacon of a page being unloaded: the page's own pagehide handler is
    # fired on the live page instead, so the test can wait for the server's answer.
    with customer.expect_request_finished(lambda r: r.url.endswith("/c/beacon")):
        customer.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide'))")
    run_queued_tasks()
    assert sop_engine.sop_dispatch_batch() == 1  # the scheduler's tick

    # 5. alice sees the alert and the task in her workspace.
    alice = new_page(mobile=True)
    sign_in(alice, "acme-alice", PASSWORD)
    alice.goto("/w/")
    expect(alice.locator("body")).to_contain_text("王小明 打开了《春季新品手册》")
    expect(alice.locator("body")).to_contain_text("客户读了新品手册，去跟进")
    screenshot(alice, "workspace-alerts", readme=True)

    # 6. She shares her shop link; the customer orders and pays at the sandbox's cashier.
    alice.goto("/convert/my-shop/")
    shop_link = alice.get_by_role("row", name="龙井茶").get_by_role("textbox").input_value()
    customer.goto(shop_link)
    expect(customer.get_by_role("heading", name="龙井茶")).to_be_visible()
    screenshot(customer, "shop-h5", readme=True)
    customer.get_by_role("button", name="加入购物车").click()
    customer.get_by_role("button", name="去支付").click()
    customer.get_by_role("button", name="确认支付").click()
    expect(customer.get_by_role("heading", name="订单", exact=False)).to_be_visible()
    assert control.pay_flush()
    customer.reload()
    expect(customer.locator("body")).to_contain_text("已付款")
    run_queued_tasks()

    # 7. The dashboard and the customer's timeline show the payment.
    with tenant_context(tenant):
        buyer = Customer.objects.get(name="王小明")
        (order,) = Order.objects.all()
        assert (order.customer_id, order.staff, order.status) == (
            buyer.pk,
            wecom_acme["alice"],
            OrderStatus.PAID,
        )
    ops.goto(f"/customers/{buyer.pk}/")
    expect(ops.locator(".timeline")).to_contain_text("order.paid")
    expect(ops.locator(".timeline")).to_contain_text("content.read")
    screenshot(ops, "customer-timeline", readme=True)
    ops.goto("/dashboard/")
    channels = ops.locator("section", has=ops.get_by_role("heading", name="渠道与活动对比"))
    expect(channels.locator(".dashboard-chart canvas")).to_be_visible()  # drawn by ECharts
    screenshot(ops, "dashboard", readme=True)
    channels.get_by_text("数据").click()
    heads = channels.locator("th").all_inner_texts()
    row = channels.locator("tbody tr").first.locator("td")
    expect(row.nth(heads.index("订单"))).to_have_text("1")
    expect(row.nth(heads.index("付费客户"))).to_have_text("1")
    expect(row.nth(heads.index("GMV"))).to_have_text("128.00")  # yuan, as people read it


def _status(page: Page, path: str) -> int:
    response = page.goto(path)
    assert response is not None
    return response.status


def test_a_member_cannot_open_another_members_customer(
    wecom_acme: Company, control: SandboxControl, new_page: Callable[..., Page]
) -> None:
    (mine,) = _added(control, wecom_acme, "alice", ["Alice 的客户"])
    (bobs,) = _added(control, wecom_acme, "bob", ["Bob 的客户"])
    alice = new_page()
    sign_in(alice, "acme-alice", PASSWORD)
    alice.goto("/customers/")
    expect(alice.get_by_role("link", name="Alice 的客户")).to_be_visible()
    expect(alice.get_by_role("link", name="Bob 的客户")).to_have_count(0)

    # Neither the console page nor the API (with her browser session) opens bob's customer.
    assert _status(alice, f"/customers/{mine}/") == 200
    assert _status(alice, f"/customers/{bobs}/") in {403, 404}
    expect(alice.locator("body")).not_to_contain_text("Bob 的客户")
    assert alice.request.get(f"/api/v1/customers/{mine}").status == 200
    refused = alice.request.get(f"/api/v1/customers/{bobs}")
    assert refused.status in {403, 404}
    assert "Bob 的客户" not in refused.text()
    assert alice.request.get(f"/api/v1/customers/{bobs}/timeline").status in {403, 404}


def test_a_departing_members_customers_are_inherited_with_nothing_lost(
    wecom_acme: Company,
    sandbox: Sandbox,
    control: SandboxControl,
    login: Any,
    new_page: Callable[..., Page],
) -> None:
    tenant, corp = wecom_acme.tenant, wecom_acme.tenant.corp_id
    names = ["客户甲", "客户乙", "客户丙"]
    ids = _added(control, wecom_acme, "bob", names)
    tags = _api(
        login.token(wecom_acme["ops"]), "/api/v1/tags/groups", {"name": "等级", "tags": ["VIP"]}
    )
    with tenant_context(tenant), transaction.atomic():  # tags_apply locks: it needs one
        for customer in Customer.objects.filter(pk__in=ids):
            tags_apply(customer, [tags["tags"][0]["id"]], source=TagSource.MANUAL)
        before = {
            pk: list(
                Event.objects.filter(customer_id=pk).order_by("pk").values_list("pk", flat=True)
            )
            for pk in ids
        }

    # bob leaves; WeCom's callback tells Siyu.
    control.simulate(corp, "resign", userid="bob")
    assert control.flush_callbacks()
    run_queued_tasks()

    # The manager hands bob's customers to alice on the 离职继承 page.
    manager = new_page()
    sign_in(manager, "acme-manager", PASSWORD)
    manager.goto("/transfers/resigned/")
    manager.get_by_role("button", name="从企业微信同步").click()
    expect(manager.locator("body")).to_contain_text("3 位待分配客户")
    manager.locator("select[name=handover]").select_option(label="Bob (bob)")
    manager.get_by_role("button", name="筛选").click()
    expect(manager.locator("input[name=customer_ids]")).to_have_count(3)
    for checkbox in manager.locator("input[name=customer_ids]").all():
        checkbox.check()
    manager.get_by_label("接替成员").select_option(label="Alice (alice)")
    manager.get_by_role("button", name="提交继承").click()
    expect(manager.locator("body")).to_contain_text("等待接替")
    screenshot(manager, "transfer-jobs")

    # A day later WeCom has moved them (nobody refused); the periodic poll settles the job.
    control.advance_clock(86400 + 1)
    poll_open.apply()
    assert control.flush_callbacks()
    run_queued_tasks()

    manager.reload()
    expect(manager.locator("body")).not_to_contain_text("等待接替")
    with tenant_context(tenant):
        for pk in ids:
            active = StaffRelation.objects.filter(customer_id=pk, status=RelationStatus.ACTIVE)
            assert [r.staff.userid for r in active] == ["alice"]
            assert list(
                CustomerTag.objects.filter(customer_id=pk).values_list("tag__name", flat=True)
            ) == ["VIP"]
            after = list(
                Event.objects.filter(customer_id=pk).order_by("pk").values_list("pk", "type")
            )
            assert [e for e, _ in after][: len(before[pk])] == before[pk]
            assert "customer.transferred" in {t for _, t in after}
    for pk, name in zip(ids, names, strict=True):
        manager.goto(f"/customers/{pk}/")
        expect(manager.get_by_role("heading", name=name)).to_be_visible()
        expect(manager.get_by_role("row", name="Alice")).to_contain_text("active")
        expect(manager.get_by_role("row", name="Bob")).to_contain_text("deleted")
        expect(manager.locator("body")).to_contain_text("等级/VIP")
        expect(manager.locator(".timeline")).to_contain_text("customer.transferred")
