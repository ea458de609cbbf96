"""An H5 visit identifies the visitor through WeChat OAuth (the sandbox's, over real HTTP) and
links them to the customer WeCom already told us about."""

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.test import Client

from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, CustomerIdentity
from siyu.customers.services import customer_ensure
from siyu.h5.services import h5_visitor
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


def visit(client: Client, sandbox: Sandbox, next_url: str = "/h5/acme/landing") -> str:
    """Start on our page, go through WeChat's authorize, come back; returns where we land."""
    start = client.get("/h5/acme/oauth/start", {"next": next_url})
    assert start.status_code == 302
    authorize = httpx.get(start["Location"].split("#")[0], follow_redirects=False)
    assert authorize.status_code == 302
    back = urlsplit(authorize.headers["location"])
    done = client.get(back.path, parse_qs(back.query))
    assert done.status_code == 302, done.content
    return str(done["Location"])


def test_a_visitor_known_from_wecom_is_linked_by_unionid(oauth_acme, sandbox, rf) -> None:
    control = SandboxControl(sandbox.base_url)
    control.set_visitor(APPID, unionid="u-visitor-1", name="小红")
    with tenant_context(oauth_acme.tenant):
        known = customer_ensure(external_userid="wm-visitor-1", unionid="u-visitor-1")
    client = Client()
    assert visit(client, sandbox) == "/h5/acme/landing"
    with tenant_context(oauth_acme.tenant):
        kinds = set(CustomerIdentity.objects.filter(customer=known).values_list("kind", flat=True))
        assert kinds == {"external_userid", "unionid", "openid"}
        assert Customer.objects.count() == 1
    request = rf.get("/")
    request.session = client.session
    visitor = h5_visitor(request, oauth_acme.tenant)
    assert visitor is not None and visitor.pk == known.pk


def test_a_new_visitor_becomes_a_customer_once(oauth_acme, sandbox) -> None:
    SandboxControl(sandbox.base_url).set_visitor(APPID, unionid="u-visitor-2")
    visit(Client(), sandbox)
    visit(Client(), sandbox)  # a second visit, another browser: same person
    with tenant_context(oauth_acme.tenant):
        assert Customer.objects.count() == 1


def test_forged_state_open_redirects_and_reused_codes_are_refused(oauth_acme, sandbox) -> None:
    SandboxControl(sandbox.base_url).set_visitor(APPID, unionid="u-visitor-3")
    client = Client()
    assert client.get("/h5/acme/oauth/start", {"next": "https://evil.example/"}).status_code == 400
    assert client.get("/h5/acme/oauth/start", {"next": "//evil.example/"}).status_code == 400
    start = client.get("/h5/acme/oauth/start", {"next": "/h5/acme/x"})
    authorize = httpx.get(start["Location"].split("#")[0], follow_redirects=False)
    back = urlsplit(authorize.headers["location"])
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    forged = client.get(back.path, {**query, "state": "not-mine"})
    assert forged.status_code == 400
    # The failed attempt used up the session's state; a fresh start with the old code fails
    # at WeChat (codes are single use once exchanged, and this one was never started here).
    other = Client()
    assert other.get(back.path, query).status_code == 400
    with tenant_context(oauth_acme.tenant):
        assert Customer.objects.count() == 0


def test_an_unconfigured_tenant_says_so(acme) -> None:
    response = Client().get("/h5/acme/oauth/start", {"next": "/"})
    assert response.status_code == 400
    assert "official account" in response.content.decode()
    assert Client().get("/h5/nobody/oauth/start").status_code == 404


def test_a_code_used_twice_is_refused_by_wechat(oauth_acme, sandbox) -> None:
    SandboxControl(sandbox.base_url).set_visitor(APPID, unionid="u-visitor-4")
    client = Client()
    start = client.get("/h5/acme/oauth/start", {"next": "/h5/acme/x"})
    authorize = httpx.get(start["Location"].split("#")[0], follow_redirects=False)
    back = urlsplit(authorize.headers["location"])
    code = parse_qs(back.query)["code"][0]
    assert client.get(back.path, parse_qs(back.query)).status_code == 302
    again = client.get("/h5/acme/oauth/start", {"next": "/h5/acme/x"})
    state = parse_qs(urlsplit(again["Location"].split("#")[0]).query)["state"][0]
    replay = client.get(back.path, {"code": code, "state": state})
    assert replay.status_code == 502
    assert "40029" in replay.content.decode()
