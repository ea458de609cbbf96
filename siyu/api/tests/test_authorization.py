"""The authorization matrix: every API operation and console page × every role × data scope.

Adding a route without adding it here fails ``test_every_api_operation_is_in_the_matrix`` (and
the console twin), so the matrix grows with the product.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from siyu.accounts.models import StaffMember
from siyu.config.api import api
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company
from siyu.webhooks.models import WebhookEndpoint

ROLES = ["boss", "admin", "ops", "manager", "alice"]
EVERYONE = set(ROLES)
ADMINS = {"boss", "admin"}


@dataclass
class Op:
    method: str
    path: str  # OpenAPI path, with {placeholders} filled by ``fill``
    allowed: set[str]
    body: dict[str, Any] | None = None
    ok: set[int] = field(default_factory=lambda: {200})


def fill(path: str, company: Company) -> str:
    with tenant_context(company.tenant):
        endpoint, _ = WebhookEndpoint.objects.get_or_create(
            url="http://127.0.0.1:9/hook", defaults={"event_types": ["*"]}
        )
    return (
        path.replace("{member_id}", str(company["carol"].pk))
        .replace("{token_id}", "999999")
        .replace("{endpoint_id}", str(endpoint.pk))
        .replace("{delivery_id}", "999999")
    )


API_MATRIX = [
    Op("get", "/api/v1/org/me", EVERYONE),
    Op("get", "/api/v1/org/departments", EVERYONE),
    Op("get", "/api/v1/org/staff", EVERYONE),
    # carol is outside the manager's and alice's scope: "not found" for them, like a missing id.
    Op("get", "/api/v1/org/staff/{member_id}", {"boss", "admin", "ops"}, ok={200}),
    Op(
        "put",
        "/api/v1/org/staff/{member_id}/permissions",
        ADMINS,
        {"role": "staff", "data_scope": "own"},
    ),
    Op("get", "/api/v1/org/tokens", ADMINS),
    Op("post", "/api/v1/org/tokens", ADMINS, {"name": "erp"}, ok={201}),
    Op("delete", "/api/v1/org/tokens/{token_id}", ADMINS, ok={404}),
    Op("get", "/api/v1/audit", ADMINS),
    Op("get", "/api/v1/events", ADMINS | {"ops"}),
    Op("get", "/api/v1/events/types", ADMINS | {"ops"}),
    Op("get", "/api/v1/events/health", ADMINS | {"ops"}),
    Op("get", "/api/v1/events/deliveries", ADMINS | {"ops"}),
    Op("post", "/api/v1/events/deliveries/{delivery_id}/retry", ADMINS, ok={404}),
    Op("get", "/api/v1/webhooks/endpoints", ADMINS),
    Op(
        "post",
        "/api/v1/webhooks/endpoints",
        ADMINS,
        {"url": "http://127.0.0.1:9/h2", "event_types": ["*"]},
        ok={201},
    ),
    Op("patch", "/api/v1/webhooks/endpoints/{endpoint_id}", ADMINS, {"description": "x"}),
    Op("delete", "/api/v1/webhooks/endpoints/{endpoint_id}", ADMINS, ok={204}),
    Op("get", "/api/v1/webhooks/deliveries", ADMINS),
    Op("post", "/api/v1/webhooks/deliveries/{delivery_id}/redeliver", ADMINS, ok={404}),
    Op("get", "/api/v1/events/inbox", ADMINS | {"ops"}),
    Op("post", "/api/v1/events/inbox/replay", ADMINS, {"dead_only": True}),
    Op("get", "/api/v1/events/reconciliations", ADMINS | {"ops"}),
    Op("get", "/api/v1/wecom/settings", ADMINS),
    Op("patch", "/api/v1/wecom/settings", ADMINS, {"agent_id": "1000002"}),
    Op("post", "/api/v1/wecom/check", ADMINS),
    Op("post", "/api/v1/wecom/reconcile", ADMINS, ok={202}),
]

# Console pages: url name → roles that may open it (GET).
CONSOLE_MATRIX = {
    "console:home": EVERYONE,
    "console:workspace": EVERYONE,
    "console:org": EVERYONE,
    "console:audit": ADMINS,
    "console:events": ADMINS | {"ops"},
    "console:webhooks": ADMINS,
    "console:tokens": ADMINS,
    "console:wecom": ADMINS,
}
# Console POST-only actions: url name → (kwargs builder, roles allowed).
CONSOLE_ACTIONS = {
    "console:org_permissions": ADMINS,
    "console:events_retry": ADMINS,
    "console:webhook_toggle": ADMINS,
    "console:webhook_delete": ADMINS,
    "console:token_revoke": ADMINS,
}
PUBLIC_CONSOLE = {"console:login", "console:logout"}


def _call(client: Client, op: Op, path: str) -> Any:
    method = getattr(client, op.method)
    if op.body is None:
        return method(path)
    return method(path, data=json.dumps(op.body), content_type="application/json")


def test_every_api_operation_is_in_the_matrix() -> None:
    schema = api.get_openapi_schema()
    declared = {
        (method, f"/api/v1{path}" if not path.startswith("/api/v1") else path)
        for path, ops in schema["paths"].items()
        for method in ops
    }
    covered = {(op.method, op.path) for op in API_MATRIX}
    assert declared == covered


def test_every_console_page_is_in_the_matrix() -> None:
    from siyu.console.urls import urlpatterns

    names = {f"console:{p.name}" for p in urlpatterns}
    assert names == set(CONSOLE_MATRIX) | set(CONSOLE_ACTIONS) | PUBLIC_CONSOLE


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("op", API_MATRIX, ids=lambda op: f"{op.method} {op.path}")
def test_api_role_matrix(op: Op, role: str, acme: Company, login) -> None:
    client = login.token(acme[role])
    response = _call(client, op, fill(op.path, acme))
    if role in op.allowed:
        assert response.status_code in op.ok, response.content
    else:
        assert response.status_code in {403, 404}, response.content
        assert set(response.json()) >= {"code", "message"}


@pytest.mark.parametrize("op", API_MATRIX, ids=lambda op: f"{op.method} {op.path}")
def test_api_without_credentials_is_401(op: Op, acme: Company) -> None:
    response = _call(Client(), op, fill(op.path, acme))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(CONSOLE_MATRIX))
def test_console_page_matrix(name: str, role: str, acme: Company, login) -> None:
    response = login.session(acme[role]).get(reverse(name))
    assert response.status_code == (200 if role in CONSOLE_MATRIX[name] else 403)


@pytest.mark.parametrize("name", sorted(CONSOLE_MATRIX))
def test_console_pages_send_anonymous_visitors_to_login(name: str, acme: Company) -> None:
    response = Client().get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


@pytest.mark.parametrize("role", sorted(EVERYONE - ADMINS))
@pytest.mark.parametrize("name", sorted(CONSOLE_ACTIONS))
def test_console_actions_refuse_other_roles(name: str, role: str, acme: Company, login) -> None:
    client = login.session(acme[role])
    with tenant_context(acme.tenant):
        endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x", event_types=["*"])
    kwargs = {
        "console:org_permissions": {"member_id": acme["carol"].pk},
        "console:events_retry": {"delivery_id": 1},
        "console:webhook_toggle": {"endpoint_id": endpoint.pk},
        "console:webhook_delete": {"endpoint_id": endpoint.pk},
        "console:token_revoke": {"token_id": 1},
    }[name]
    response = client.post(reverse(name, kwargs=kwargs), {"role": "admin", "active": "0"})
    assert response.status_code == 403
    with tenant_context(acme.tenant):
        assert WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).exists()
        assert StaffMember.objects.get(pk=acme["carol"].pk).role == "staff"


# --- data scopes -------------------------------------------------------------------------

EXPECTED_VISIBLE = {
    "boss": {"boss", "admin", "ops", "manager", "alice", "bob", "carol"},
    "admin": {"boss", "admin", "ops", "manager", "alice", "bob", "carol"},
    "ops": {"boss", "admin", "ops", "manager", "alice", "bob", "carol"},
    "manager": {"manager", "alice", "bob"},  # 销售部 and its 华东组 / 华南组
    "alice": {"alice"},
}


@pytest.mark.parametrize("role", ROLES)
def test_staff_list_follows_the_data_scope(role: str, acme: Company, login) -> None:
    response = login.token(acme[role]).get("/api/v1/org/staff?limit=200")
    assert response.status_code == 200
    assert {item["userid"] for item in response.json()["items"]} == EXPECTED_VISIBLE[role]
    assert response.json()["count"] == len(EXPECTED_VISIBLE[role])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", ["alice", "bob", "carol"])
def test_member_lookup_follows_the_data_scope(role: str, target: str, acme: Company, login) -> None:
    response = login.token(acme[role]).get(f"/api/v1/org/staff/{acme[target].pk}")
    expected = 200 if target in EXPECTED_VISIBLE[role] else 404
    assert response.status_code == expected


def test_a_narrowed_scope_overrides_the_role_default(acme: Company, login) -> None:
    ops = acme["ops"]
    ops.data_scope = "own"
    ops.save()
    response = login.token(ops).get("/api/v1/org/staff")
    assert {item["userid"] for item in response.json()["items"]} == {"ops"}


def test_console_org_page_lists_only_visible_members(acme: Company, login) -> None:
    page = login.session(acme["manager"]).get(reverse("console:org")).content.decode()
    assert "Alice" in page and "Bob" in page
    assert "Carol" not in page and "王总" not in page
