"""A request for tenant A can never read or change tenant B's rows, by API or console."""

import json

from django.urls import reverse

from siyu.accounts.models import StaffMember
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company
from siyu.webhooks.models import WebhookEndpoint


def test_api_lists_and_lookups_never_cross_tenants(acme: Company, globex: Company, login) -> None:
    client = login.token(acme["admin"])
    names = {m["name"] for m in client.get("/api/v1/org/staff?limit=200").json()["items"]}
    assert "Dave" not in names and "Globex 老板" not in names
    assert client.get(f"/api/v1/org/staff/{globex['dave'].pk}").status_code == 404


def test_api_cannot_change_another_tenants_member(acme: Company, globex: Company, login) -> None:
    client = login.token(acme["boss"])
    response = client.put(
        f"/api/v1/org/staff/{globex['dave'].pk}/permissions",
        data=json.dumps({"role": "admin"}),
        content_type="application/json",
    )
    assert response.status_code == 404
    with tenant_context(globex.tenant):
        assert StaffMember.objects.get(pk=globex["dave"].pk).role == "staff"


def test_api_cannot_touch_another_tenants_webhook(acme: Company, globex: Company, login) -> None:
    with tenant_context(globex.tenant):
        theirs = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/g", event_types=["*"])
    client = login.token(acme["admin"])
    assert client.delete(f"/api/v1/webhooks/endpoints/{theirs.pk}").status_code == 404
    response = client.patch(
        f"/api/v1/webhooks/endpoints/{theirs.pk}",
        data=json.dumps({"is_active": False}),
        content_type="application/json",
    )
    assert response.status_code == 404
    assert client.get("/api/v1/webhooks/endpoints").json() == []
    with tenant_context(globex.tenant):
        assert WebhookEndpoint.objects.get(pk=theirs.pk).is_active


def test_console_cannot_change_another_tenants_rows(acme: Company, globex: Company, login) -> None:
    with tenant_context(globex.tenant):
        theirs = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/g", event_types=["*"])
    client = login.session(acme["admin"])
    response = client.post(reverse("console:webhook_delete", args=[theirs.pk]))
    assert response.status_code == 404
    response = client.post(
        reverse("console:org_permissions", args=[globex["dave"].pk]), {"role": "admin"}
    )
    assert response.status_code == 404
    with tenant_context(globex.tenant):
        assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
        assert StaffMember.objects.get(pk=globex["dave"].pk).role == "staff"
    page = client.get(reverse("console:org")).content.decode()
    assert "Dave" not in page


def test_a_token_acts_only_in_its_own_tenant(acme: Company, globex: Company, login) -> None:
    me = login.token(globex["dave"]).get("/api/v1/org/me").json()
    assert me["tenant"] == "globex"
    assert me["staff"]["userid"] == "dave"
