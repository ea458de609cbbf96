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
# Members whose data scope covers carol (市场部), who follows the matrix's customers.
COMPANY_WIDE = ADMINS | {"ops"}
TAG_MANAGERS = ADMINS | {"ops"}  # the taxonomy and auto-tag rules
TRANSFERRERS = ADMINS | {"manager"}  # 在职/离职继承, managers within their department
SEGMENT_MANAGERS = ADMINS | {"ops"}  # saved segments; everyone counts within their scope
IMPORTERS = ADMINS | {"ops"}  # customers and tags from files
ANALYSTS = ADMINS | {"ops", "manager"}  # channel analytics, managers within their department
SPENDERS = ADMINS | {"ops"}  # channel spend (company-wide money)
CHANNEL_MANAGERS = ADMINS | {"ops"}  # channel codes (渠道活码)
FISSION = ADMINS | {"ops"}  # fission campaigns


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
        customer, twin, phone = _matrix_customers(company)
        import_job = _matrix_import_job(company)
        campaign = _matrix_campaign(company)
    return (
        path.replace("{member_id}", str(company["carol"].pk))
        .replace("{customer_id}", str(customer))
        .replace("{customer2_id}", str(twin))
        .replace("{phone_identity_id}", str(phone))
        .replace("{merge_id}", "999999")
        .replace("{rule_id}", "999999")
        .replace("{token_id}", "999999")
        .replace("{group_id}", "999999")
        .replace("{tag_id}", "999999")
        .replace("{endpoint_id}", str(endpoint.pk))
        .replace("{delivery_id}", "999999")
        .replace("{transfer_id}", "999999")
        .replace("{segment_id}", "999999")
        .replace("{job_id}", str(import_job))
        .replace("{spend_id}", "999999")
        .replace("{code_id}", "999999")
        .replace("{campaign_id}", str(campaign))
    )


def _matrix_customers(company: Company) -> tuple[int, int, int]:
    """Two customers of carol's (a phone on the first), made once per test."""
    from datetime import UTC, datetime

    from siyu.customers.models import CustomerIdentity
    from siyu.customers.services import relation_added

    ids = []
    for ext in ("wm-matrix-1", "wm-matrix-2"):
        known = CustomerIdentity.objects.filter(value=ext).first()
        if known is None:
            relation = relation_added(
                staff=company["carol"],
                external_userid=ext,
                at=datetime(2026, 1, 1, tzinfo=UTC),
                source="wecom",
            )
            assert relation is not None
            ids.append(relation.customer_id)
        else:
            ids.append(known.customer_id)
    phone, _ = CustomerIdentity.objects.get_or_create(
        kind="phone", value="13800000099", defaults={"customer_id": ids[0]}
    )
    return ids[0], ids[1], phone.pk


def _matrix_import_job(company: Company) -> int:
    """A previewed import job with one valid row (never run: confirming only queues it)."""
    from siyu.imports.models import ImportJob

    job, _ = ImportJob.objects.get_or_create(
        file_name="matrix.csv",
        defaults={
            "kind": "customers",
            "stored_name": "imports/matrix.csv",
            "file_format": "csv",
            "columns": {"0": "phone"},
            "summary": {"rows": 1, "valid": 1, "invalid": 0},
            "total_rows": 1,
        },
    )
    return job.pk


def _matrix_campaign(company: Company) -> int:
    """A running 任务宝 campaign with carol in its pool and one tier, made once per test."""
    from datetime import UTC, datetime

    from siyu.fission.models import Campaign, RewardTier

    campaign = Campaign.objects.filter(description="matrix").first()
    if campaign is None:
        campaign = Campaign.objects.create(
            kind="task",
            name="矩阵活动",
            description="matrix",
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            ends_at=datetime(2036, 1, 1, tzinfo=UTC),
        )
        campaign.staff.set([company["carol"]])
        RewardTier.objects.create(
            campaign=campaign, threshold=3, kind="link", payload="https://x.test/r", stock=5
        )
    return campaign.pk


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
    Op("get", "/api/v1/customers", EVERYONE),
    Op("get", "/api/v1/customers/{customer_id}", COMPANY_WIDE),
    Op("get", "/api/v1/customers/{customer_id}/timeline", COMPANY_WIDE),
    Op("patch", "/api/v1/customers/{customer_id}", COMPANY_WIDE, {"stage": "intent"}),
    Op(
        "post",
        "/api/v1/customers/{customer_id}/merge",
        COMPANY_WIDE,
        {"absorbed_id": "{customer2_id}"},
    ),
    Op("post", "/api/v1/customers/merges/{merge_id}/undo", COMPANY_WIDE, ok={404}),
    Op(
        "post",
        "/api/v1/customers/{customer_id}/split",
        COMPANY_WIDE,
        {"identity_ids": ["{phone_identity_id}"]},
        ok={201},
    ),
    Op(
        "post",
        "/api/v1/customers/{customer_id}/identities",
        COMPANY_WIDE,
        {"kind": "phone", "value": "13900000000"},
        ok={201},
    ),
    Op("get", "/api/v1/lifecycle/stages", EVERYONE),
    Op(
        "put",
        "/api/v1/lifecycle/stages",
        COMPANY_WIDE,
        {
            "stages": [
                {"key": k, "name": n}
                for k, n in [("normal", "新客"), ("intent", "意向"), ("paid", "付费")]
                + [("repeat", "复购"), ("agent", "代理")]
            ]
        },
    ),
    Op("get", "/api/v1/lifecycle/rules", COMPANY_WIDE),
    Op(
        "post",
        "/api/v1/lifecycle/rules",
        COMPANY_WIDE,
        {"event_type": "customer.joined_group", "min_count": 1, "stage": "intent"},
        ok={201},
    ),
    Op("delete", "/api/v1/lifecycle/rules/{rule_id}", COMPANY_WIDE, ok={404}),
    Op("get", "/api/v1/lifecycle/fields", EVERYONE),
    Op("post", "/api/v1/lifecycle/fields", COMPANY_WIDE, {"key": "city", "name": "城市"}, ok={201}),
    Op("get", "/api/v1/lifecycle/account-matrix", EVERYONE),
    Op(
        "put",
        "/api/v1/lifecycle/account-kinds/{member_id}",
        COMPANY_WIDE,
        {"account_kind": "ip"},
    ),
    # Tags: a name WeCom would refuse, and unknown ids, answer before any WeCom call.
    Op("get", "/api/v1/tags/groups", EVERYONE),
    Op("post", "/api/v1/tags/groups", TAG_MANAGERS, {"name": "长" * 31, "tags": ["a"]}, ok={400}),
    Op("patch", "/api/v1/tags/groups/{group_id}", TAG_MANAGERS, {"name": "x"}, ok={404}),
    Op("delete", "/api/v1/tags/groups/{group_id}", TAG_MANAGERS, ok={404}),
    Op("post", "/api/v1/tags/groups/{group_id}/tags", TAG_MANAGERS, {"name": "x"}, ok={404}),
    Op("patch", "/api/v1/tags/{tag_id}", TAG_MANAGERS, {"name": "x"}, ok={404}),
    Op("delete", "/api/v1/tags/{tag_id}", TAG_MANAGERS, ok={404}),
    Op("get", "/api/v1/tags/customers/{customer_id}", COMPANY_WIDE),
    Op("post", "/api/v1/tags/customers/{customer_id}", COMPANY_WIDE, {"add": [], "remove": []}),
    Op("get", "/api/v1/tags/rules", TAG_MANAGERS),
    Op(
        "post",
        "/api/v1/tags/rules",
        TAG_MANAGERS,
        {"name": "r", "event_type": "customer.added", "tag_id": 999999},
        ok={404},
    ),
    Op("patch", "/api/v1/tags/rules/{rule_id}", TAG_MANAGERS, {"enabled": False}, ok={404}),
    Op("delete", "/api/v1/tags/rules/{rule_id}", TAG_MANAGERS, ok={404}),
    Op("get", "/api/v1/tags/quality", COMPANY_WIDE | {"manager"}),
    # Transfers: carol to carol is refused (400) by those who see her, 404 for the manager.
    Op("get", "/api/v1/transfers", TRANSFERRERS),
    Op(
        "post",
        "/api/v1/transfers",
        TRANSFERRERS,
        {
            "handover_id": "{member_id}",
            "takeover_id": "{member_id}",
            "customer_ids": ["{customer_id}"],
        },
        ok={400, 404},
    ),
    Op("get", "/api/v1/transfers/unassigned", TRANSFERRERS),
    Op("post", "/api/v1/transfers/unassigned/sync", TRANSFERRERS, ok={202}),
    Op("get", "/api/v1/transfers/{transfer_id}", TRANSFERRERS, ok={404}),
    Op("post", "/api/v1/transfers/{transfer_id}/poll", TRANSFERRERS, ok={404}),
    Op("get", "/api/v1/segments", EVERYONE),
    Op(
        "post",
        "/api/v1/segments",
        SEGMENT_MANAGERS,
        {"name": "付费", "expression": "stage:paid"},
        ok={201},
    ),
    Op("post", "/api/v1/segments/count", EVERYONE, {"expression": "stage:paid"}),
    Op("get", "/api/v1/segments/{segment_id}", EVERYONE, ok={404}),
    Op("patch", "/api/v1/segments/{segment_id}", SEGMENT_MANAGERS, {"name": "x"}, ok={404}),
    Op("delete", "/api/v1/segments/{segment_id}", SEGMENT_MANAGERS, ok={404}),
    Op("get", "/api/v1/segments/{segment_id}/customers", EVERYONE, ok={404}),
    # Imports: a post without a file is refused (400) after the permission check.
    Op("post", "/api/v1/imports", IMPORTERS, ok={400}),
    Op("get", "/api/v1/imports", IMPORTERS),
    Op("get", "/api/v1/imports/{job_id}", IMPORTERS),
    Op("post", "/api/v1/imports/{job_id}/confirm", IMPORTERS, ok={202}),
    Op("get", "/api/v1/imports/{job_id}/errors", IMPORTERS),
    Op("post", "/api/v1/exports", EVERYONE, {"expression": "", "format": "csv"}),
    Op("get", "/api/v1/analytics/channels", ANALYSTS),
    Op(
        "post",
        "/api/v1/analytics/channels/export",
        ANALYSTS,
        {"start": "2026-01-01", "end": "2026-01-31", "format": "csv"},
    ),
    Op("get", "/api/v1/analytics/spend", SPENDERS),
    Op(
        "post",
        "/api/v1/analytics/spend",
        SPENDERS,
        {"source": "ch:1", "start": "2026-01-01", "end": "2026-01-01", "amount_fen": 100},
        ok={201},
    ),
    Op("delete", "/api/v1/analytics/spend/{spend_id}", SPENDERS, ok={404}),
    # Channel codes: a create with an overlong name is refused (400) before WeCom is called.
    Op("get", "/api/v1/channels", CHANNEL_MANAGERS),
    Op(
        "post",
        "/api/v1/channels",
        CHANNEL_MANAGERS,
        {"name": "长" * 31, "staff_ids": [1]},
        ok={400},
    ),
    Op("get", "/api/v1/channels/quota", CHANNEL_MANAGERS),
    Op("get", "/api/v1/channels/welcome-default", CHANNEL_MANAGERS),
    Op("put", "/api/v1/channels/welcome-default", CHANNEL_MANAGERS, {"text": "欢迎"}),
    Op("get", "/api/v1/channels/{code_id}", CHANNEL_MANAGERS, ok={404}),
    Op("patch", "/api/v1/channels/{code_id}", CHANNEL_MANAGERS, {"name": "x"}, ok={404}),
    Op("delete", "/api/v1/channels/{code_id}", CHANNEL_MANAGERS, ok={404}),
    Op("post", "/api/v1/channels/{code_id}/pause", CHANNEL_MANAGERS, ok={404}),
    Op("post", "/api/v1/channels/{code_id}/resume", CHANNEL_MANAGERS, ok={404}),
    Op("get", "/api/v1/channels/{code_id}/qr", CHANNEL_MANAGERS, ok={404}),
    # Fission: a campaign ending before it starts is refused (400) after the permission check.
    Op("get", "/api/v1/fission/campaigns", FISSION),
    Op(
        "post",
        "/api/v1/fission/campaigns",
        FISSION,
        {
            "kind": "task",
            "name": "x",
            "starts_at": "2026-02-01T00:00:00+00:00",
            "ends_at": "2026-01-01T00:00:00+00:00",
            "staff_ids": ["{member_id}"],
            "tiers": [{"threshold": 3, "kind": "link", "payload": "https://x.test", "stock": 1}],
        },
        ok={400},
    ),
    Op("get", "/api/v1/fission/campaigns/{campaign_id}", FISSION),
    Op("patch", "/api/v1/fission/campaigns/{campaign_id}", FISSION, {"name": "矩阵活动"}),
    Op("post", "/api/v1/fission/campaigns/{campaign_id}/poster", FISSION, ok={400}),
    Op("get", "/api/v1/fission/campaigns/{campaign_id}/participants", FISSION),
    Op("get", "/api/v1/fission/campaigns/{campaign_id}/tree", FISSION),
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
    "console:customers": EVERYONE,
    "console:lifecycle": COMPANY_WIDE,
    "console:tags": ADMINS | {"ops"},
    "console:tag_rules": ADMINS | {"ops"},
    "console:tag_quality": ADMINS | {"ops", "manager"},
    "console:transfers_onjob": TRANSFERRERS,
    "console:transfers_resigned": TRANSFERRERS,
    "console:transfer_jobs": TRANSFERRERS,
    "console:segments": EVERYONE,
    "console:segment_count": EVERYONE,
    "console:imports": EVERYONE,
    "console:export": EVERYONE,
    "console:analytics_channels": ANALYSTS,
    "console:analytics_export": ANALYSTS,
    "console:channels": CHANNEL_MANAGERS,
    "console:channel_form": CHANNEL_MANAGERS,
    "console:fission_campaigns": FISSION,
    "console:fission_campaign_new": FISSION,
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
# Console pages and actions on one of carol's customers: name → (method, roles allowed).
CONSOLE_SCOPED = {
    "console:customer": ("get", COMPANY_WIDE),
    "console:customer_update": ("post", COMPANY_WIDE),
    "console:customer_tags": ("post", COMPANY_WIDE),
    "console:customer_merge": ("post", COMPANY_WIDE),
    "console:customer_split": ("post", COMPANY_WIDE),
    "console:customer_unmerge": ("post", set()),  # merge 999999 does not exist
    "console:lifecycle_update": ("post", COMPANY_WIDE),
    "console:import_upload": ("post", IMPORTERS),  # no file: back to the form with a message
    "console:import_job": ("get", IMPORTERS),
    "console:import_confirm": ("post", IMPORTERS),
    "console:import_errors": ("get", IMPORTERS),
    "console:analytics_spend": ("post", SPENDERS),
    "console:channel_qr": ("get", set()),  # code 999999 does not exist
    "console:fission_campaign": ("get", FISSION),
}


def _call(client: Client, op: Op, path: str, company: Company) -> Any:
    method = getattr(client, op.method)
    if op.body is None:
        return method(path)
    body = fill(json.dumps(op.body, ensure_ascii=False), company)  # ids of this test's rows
    return method(path, data=body, content_type="application/json")


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
    assert (
        names == set(CONSOLE_MATRIX) | set(CONSOLE_ACTIONS) | set(CONSOLE_SCOPED) | PUBLIC_CONSOLE
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("op", API_MATRIX, ids=lambda op: f"{op.method} {op.path}")
def test_api_role_matrix(op: Op, role: str, acme: Company, login) -> None:
    client = login.token(acme[role])
    response = _call(client, op, fill(op.path, acme), acme)
    if role in op.allowed:
        assert response.status_code in op.ok, response.content
    else:
        assert response.status_code in {403, 404}, response.content
        assert set(response.json()) >= {"code", "message"}


@pytest.mark.parametrize("op", API_MATRIX, ids=lambda op: f"{op.method} {op.path}")
def test_api_without_credentials_is_401(op: Op, acme: Company) -> None:
    response = _call(Client(), op, fill(op.path, acme), acme)
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


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(CONSOLE_SCOPED))
def test_console_scoped_matrix(name: str, role: str, acme: Company, login) -> None:
    """Pages on one customer: allowed roles see it or change it; the others get 403/404 and
    nothing changes."""
    from siyu.customers.models import Customer
    from siyu.imports.models import ImportJob

    with tenant_context(acme.tenant):
        customer, twin, phone = _matrix_customers(acme)
        import_job = _matrix_import_job(acme)
        campaign = _matrix_campaign(acme)
    method, allowed = CONSOLE_SCOPED[name]
    kwargs, data = {
        "console:customer": ({"customer_id": customer}, {}),
        "console:customer_update": ({"customer_id": customer}, {"stage": "intent"}),
        "console:customer_tags": ({"customer_id": customer}, {}),
        "console:customer_merge": ({"customer_id": customer}, {"absorbed_id": twin}),
        "console:customer_split": ({"customer_id": customer}, {"identity": phone}),
        "console:customer_unmerge": ({"merge_id": 999999}, {}),
        "console:lifecycle_update": (
            {},
            {"form": "account_kind", "member_id": acme["carol"].pk, "account_kind": "ip"},
        ),
        "console:import_upload": ({}, {"kind": "customers"}),
        "console:import_job": ({"job_id": import_job}, {}),
        "console:import_confirm": ({"job_id": import_job}, {}),
        "console:import_errors": ({"job_id": import_job}, {}),
        "console:analytics_spend": ({}, {"source": "ch:1", "start": "2026-01-01", "amount": "1"}),
        "console:channel_qr": ({"code_id": 999999}, {}),
        "console:fission_campaign": ({"campaign_id": campaign}, {}),
    }[name]
    client = login.session(acme[role])
    response = getattr(client, method)(reverse(name, kwargs=kwargs), data)
    with tenant_context(acme.tenant):
        changed = {
            "console:customer_update": Customer.objects.get(pk=customer).stage == "intent",
            "console:customer_merge": Customer.objects.get(pk=twin).merged_into_id == customer,
            "console:customer_split": Customer.objects.filter(identities__pk=phone)
            .exclude(pk=customer)
            .exists(),
            "console:lifecycle_update": StaffMember.objects.get(pk=acme["carol"].pk).account_kind
            == "ip",
            "console:import_confirm": ImportJob.objects.get(pk=import_job).status == "queued",
        }.get(name)
    if role in allowed:
        assert response.status_code == (200 if method == "get" else 302)
        assert changed in (None, True)
    else:
        assert response.status_code in {403, 404}
        assert not changed


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
