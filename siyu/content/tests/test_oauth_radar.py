"""Identified visitors: WeChat OAuth (the sandbox's, over real HTTP) names the reader, so the
open, the read and the forward land on the customers' timelines and in the radar."""

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.test import Client

from siyu.content.models import Visit
from siyu.content.selectors import forward_tree, item_stats, staff_stats
from siyu.content.services import tracked_url
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.services import customer_ensure
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.testing.stories import Company

APPID = "wx_acme_mp"
SECRET = "acme-mp-secret"  # noqa: S105


@pytest.fixture
def oauth_acme(acme: Company, sandbox: Sandbox) -> Company:
    tenant = acme.tenant
    tenant.wechat_appid = APPID
    tenant.wechat_secret = SECRET
    tenant.wechat_oauth_url = sandbox.base_url + "/connect/oauth2/authorize"
    tenant.wechat_api_base_url = sandbox.base_url + "/"
    tenant.save()
    SandboxControl(sandbox.base_url).register_wechat_app(APPID, SECRET)
    return acme


def open_as(sandbox: Sandbox, unionid: str, path: str) -> tuple[Client, Any]:
    """A reader in WeChat opens ``path``: bounced through OAuth once, then the page."""
    SandboxControl(sandbox.base_url).set_visitor(APPID, unionid=unionid)
    client = Client()
    first = client.get(path)
    assert first.status_code == 302 and first["Location"].startswith("/h5/acme/oauth/start")
    start = client.get(first["Location"])
    authorize = httpx.get(start["Location"].split("#")[0], follow_redirects=False)
    back = urlsplit(authorize.headers["location"])
    done = client.get(back.path, parse_qs(back.query))
    assert done["Location"] == path
    page = client.get(path)
    assert page.status_code == 200
    return client, page.context


def test_identified_open_read_and_forward_reach_the_timeline_and_radar(oauth_acme, sandbox) -> None:
    acme = oauth_acme
    with tenant_context(acme.tenant):
        from siyu.content.services import item_create

        item = item_create(actor=acme["ops"], kind="article", title="产品手册", body="<p>你好</p>")
        xiaohong = customer_ensure(external_userid="wm-hong", unionid="u-hong")
        path = urlsplit(
            tracked_url(item=item, sender=acme["alice"], source="masssend:7", customer=xiaohong)
        ).path
    client_a, page_a = open_as(sandbox, "u-hong", path)
    beacon = client_a.post(
        "/h5/acme/c/beacon",
        data=json.dumps({"key": page_a["beacon_key"], "seconds": 5, "final": True}),
        content_type="application/json",
    )
    assert beacon.status_code == 204
    # 小红 forwards it to 小明 (new to us: OAuth makes him a customer).
    _, page_b = open_as(sandbox, "u-ming", page_a["share_path"])
    with tenant_context(acme.tenant):
        visit_a = Visit.objects.get(beacon_key=page_a["beacon_key"])
        visit_b = Visit.objects.get(beacon_key=page_b["beacon_key"])
        assert visit_a.customer == xiaohong
        assert visit_b.customer is not None and visit_b.customer != xiaohong
        assert visit_b.forwarded_from == visit_a
        events = {e.type + (":b" if e.customer_id == visit_b.customer_id else ""): e
                  for e in Event.objects.filter(type__startswith="content.")}  # fmt: skip
        opened = events["content.opened"]
        assert opened.customer_id == xiaohong.pk and opened.source == "h5"
        assert opened.payload == {
            "item_id": item.pk,
            "title": "产品手册",
            "staff_id": acme["alice"].pk,
            "source": "masssend:7",
            "link_id": visit_a.link_id,
            "visit_id": visit_a.pk,
        }
        read = events["content.read"]
        assert read.customer_id == xiaohong.pk and read.payload["seconds"] == 5
        forwarded = events["content.forwarded:b"]
        assert forwarded.payload["from_customer_id"] == xiaohong.pk
        assert forwarded.payload["staff_id"] == acme["alice"].pk
        assert "content.opened:b" in events

        stats = item_stats(actor=acme["boss"], item=item)
        assert (stats.opens, stats.visitors, stats.identified, stats.forwards) == (2, 2, 2, 1)
        assert stats.avg_read_seconds == 5.0
        tree = forward_tree(actor=acme["alice"], item=item)
        assert [n.visit.pk for n in tree] == [visit_a.pk]
        assert [n.visit.pk for n in tree[0].children] == [visit_b.pk]
        # Radar numbers are about people: bob (another department) sees none of alice's sends.
        assert item_stats(actor=acme["bob"], item=item).opens == 0
        assert forward_tree(actor=acme["bob"], item=item) == []
        assert [(s.name, s.opens) for s in staff_stats(actor=acme["manager"])] == [("Alice", 2)]
