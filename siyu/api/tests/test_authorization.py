"""The authorization matrix: every API operation and console page × every role × data scope.

Adding a route without adding it here fails ``test_every_api_operation_is_in_the_matrix`` (and
the console twin), so the matrix grows with the product.
"""

import json
import re
from collections.abc import Callable
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
CONTENT_MANAGERS = ADMINS | {"ops"}  # content library (内容库); everyone shares and sees radar
# workspace: scripts library (话术库) and the tasks overview, managers within their department
WORKSPACE_MANAGERS = ADMINS | {"ops", "manager"}
SOP_MANAGERS = ADMINS | {"ops"}  # sop: customer and group SOPs, their funnels
GOAL_MANAGERS = ADMINS | {"ops"}  # dashboards: goals; the dashboards are everyone's, in scope
# shop: catalog, payment settings and external shops; orders are everyone's within their scope
SHOP_MANAGERS = ADMINS | {"ops"}
PROMOTERS = ADMINS | {"ops"}  # promotions: coupons, group-buys, commission rules
ASSET_VIEWERS = ADMINS | {"manager"}  # team: account assets, managers within their department
MASS_SENDERS = ADMINS | {"ops"}  # masssend: mass sends (群发) to customers, chats, moments


@dataclass
class Op:
    method: str
    path: str  # OpenAPI path, with {placeholders} filled by ``fill``
    allowed: set[str]
    body: dict[str, Any] | None = None
    ok: set[int] = field(default_factory=lambda: {200})


MISSING = "999999"  # an id that exists nowhere: allowed roles get 404, like other scopes


def _placeholders(company: Company) -> dict[str, Callable[[], object]]:
    """Each placeholder's value, built only when a path or body names it (the matrix has
    thousands of cases; building every row for each would dominate the suite's time)."""
    return {
        "member_id": lambda: company["carol"].pk,
        "customer_id": lambda: _matrix_customers(company)[0],
        "customer2_id": lambda: _matrix_customers(company)[1],
        "phone_identity_id": lambda: _matrix_customers(company)[2],
        "endpoint_id": lambda: (
            WebhookEndpoint.objects.get_or_create(
                url="http://127.0.0.1:9/hook", defaults={"event_types": ["*"]}
            )[0].pk
        ),
        "job_id": lambda: _matrix_import_job(company),
        "campaign_id": lambda: _matrix_campaign(company),
        "task_id": lambda: _matrix_task(company),
        "item_id": lambda: _matrix_content_item(company),
        "sop_id": lambda: _matrix_sop(company),
        "key": lambda: "assets",  # dashboards: a panel
        "product_id": lambda: _matrix_shop(company)[0],  # shop
        "sku_id": lambda: _matrix_shop(company)[1],
        "order_id": lambda: _matrix_shop(company)[2],
        "shop_key": lambda: "matrix",
        "asset_id": lambda: _matrix_asset(company),  # team: carol's WeCom account
        **{
            name: lambda: MISSING
            for name in [
                "merge_id",
                "rule_id",
                "token_id",
                "group_id",
                "tag_id",
                "delivery_id",
                "transfer_id",
                "segment_id",
                "spend_id",
                "code_id",
                "folder_id",
                "script_id",
                "category_id",
                "goal_id",
                "churn_record_id",
                "template_id",
                "coupon_id",
                "groupbuy_id",
                "run_id",
                "inventory_item_id",
                "mass_send_id",
            ]
        },
    }


def fill(path: str, company: Company) -> str:
    values = _placeholders(company)
    with tenant_context(company.tenant):
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]()), path)


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


def _matrix_task(company: Company) -> int:
    """An open workspace task of carol's: nobody else may mark it done."""
    from siyu.workspace.services import task_create

    task = task_create(staff=company["carol"], title="矩阵任务", kind="sop", dedupe_key="matrix")
    return task.pk


def _matrix_content_item(company: Company) -> int:
    """An article in the content library, made once per test."""
    from siyu.content.models import ContentItem

    item, _ = ContentItem.objects.get_or_create(
        title="矩阵内容", defaults={"kind": "article", "body": "<p>x</p>"}
    )
    return item.pk


def _matrix_sop(company: Company) -> int:
    """A draft SOP (sop app), made once per test."""
    from siyu.sop.models import Sop, SopStep

    sop = Sop.objects.filter(name="矩阵 SOP").first()
    if sop is None:
        sop = Sop.objects.create(
            name="矩阵 SOP",
            trigger_kind="event",
            trigger_event="customer.added",
            trigger={"event_type": "customer.added", "conditions": {}},
        )
        SopStep.objects.create(sop=sop, order=1)
    return sop.pk


def _matrix_shop(company: Company) -> tuple[int, int, int]:
    """shop: a product with one SKU, an unpaid order by carol's customer credited to carol,
    and an external shop "matrix"; made once per test."""
    from siyu.customers.models import Customer
    from siyu.shop.models import ExternalShop, Order, Product, Sku
    from siyu.shop.services import order_create

    sku = Sku.objects.filter(product__name="矩阵商品").first()
    if sku is None:
        product = Product.objects.create(name="矩阵商品")
        sku = Sku.objects.create(product=product, name="标准", price_fen=100, stock=10)
        customer = Customer.objects.get(pk=_matrix_customers(company)[0])
        order_create(customer=customer, staff=company["carol"], lines=[(sku, 1)])
        ExternalShop.objects.create(key="matrix", name="矩阵店铺", secret="matrix-secret")
    order = Order.objects.order_by("pk").first()
    assert order is not None
    return sku.product_id, sku.pk, order.pk


def _matrix_asset(company: Company) -> int:
    """team: carol's WeCom account as an asset (in use: she follows the matrix's customers)."""
    from siyu.team.models import AccountAsset
    from siyu.team.services import assets_ensure

    _matrix_customers(company)
    assets_ensure()
    return AccountAsset.objects.get(staff=company["carol"]).pk


MATRIX_SOP = {
    "name": "矩阵 SOP",
    "trigger_kind": "event",
    "trigger": {"event_type": "customer.added"},
    "steps": [{"actions": []}],
}

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
    # --- workspace: own tasks and alerts only (carol's task is nobody else's to finish);
    # a script in a missing scenario is refused (400) after the permission check.
    Op("get", "/api/v1/workspace/tasks", EVERYONE),
    Op("post", "/api/v1/workspace/tasks/{task_id}/done", set(), ok={404}),
    Op("get", "/api/v1/workspace/tasks/overview", WORKSPACE_MANAGERS),
    Op("get", "/api/v1/workspace/alerts", EVERYONE),
    Op("get", "/api/v1/workspace/scripts", EVERYONE),
    Op(
        "post",
        "/api/v1/workspace/scripts",
        WORKSPACE_MANAGERS,
        {"category_id": 999999, "title": "t", "text": "x"},
        ok={400},
    ),
    Op(
        "put",
        "/api/v1/workspace/scripts/{script_id}",
        WORKSPACE_MANAGERS,
        {"category_id": 999999, "title": "t", "text": "x"},
        ok={400},
    ),
    Op("delete", "/api/v1/workspace/scripts/{script_id}", WORKSPACE_MANAGERS, ok={404}),
    Op("post", "/api/v1/workspace/scripts/{script_id}/use", EVERYONE, ok={404}),
    Op("get", "/api/v1/workspace/script-categories", EVERYONE),
    Op(
        "post",
        "/api/v1/workspace/script-categories",
        WORKSPACE_MANAGERS,
        {"name": "开场白"},
        ok={201},
    ),
    Op(
        "put",
        "/api/v1/workspace/script-categories/{category_id}",
        WORKSPACE_MANAGERS,
        {"name": "x"},
        ok={404},
    ),
    Op(
        "delete",
        "/api/v1/workspace/script-categories/{category_id}",
        WORKSPACE_MANAGERS,
        ok={404},
    ),
    # --- content: the library is everyone's briefcase (links for themselves, radar in scope);
    # managing it is content.manage. An article has no url to check (400 after the check).
    Op("get", "/api/v1/content/folders", EVERYONE),
    Op("post", "/api/v1/content/folders", CONTENT_MANAGERS, {"name": "案例"}, ok={201}),
    Op("patch", "/api/v1/content/folders/{folder_id}", CONTENT_MANAGERS, {"name": "x"}, ok={404}),
    Op("delete", "/api/v1/content/folders/{folder_id}", CONTENT_MANAGERS, ok={404}),
    Op("get", "/api/v1/content/items", EVERYONE),
    Op(
        "post",
        "/api/v1/content/items",
        CONTENT_MANAGERS,
        {"kind": "article", "title": "新文章", "body": "<p>x</p>"},
        ok={201},
    ),
    Op("get", "/api/v1/content/items/{item_id}", EVERYONE),
    Op("patch", "/api/v1/content/items/{item_id}", CONTENT_MANAGERS, {"title": "矩阵内容"}),
    Op("delete", "/api/v1/content/items/{item_id}", CONTENT_MANAGERS, ok={204}),
    Op("post", "/api/v1/content/items/{item_id}/file", CONTENT_MANAGERS, ok={400}),
    Op("post", "/api/v1/content/items/{item_id}/check-url", CONTENT_MANAGERS, ok={400}),
    Op("post", "/api/v1/content/items/{item_id}/links", EVERYONE, {}, ok={201}),
    Op("get", "/api/v1/content/items/{item_id}/stats", EVERYONE),
    Op("get", "/api/v1/content/items/{item_id}/tree", EVERYONE),
    Op("get", "/api/v1/content/stats/staff", EVERYONE),
    # --- sop: operations and admins; pausing a draft is a conflict (409) after the check.
    Op("get", "/api/v1/sops", SOP_MANAGERS),
    Op("post", "/api/v1/sops", SOP_MANAGERS, MATRIX_SOP, ok={201}),
    Op("get", "/api/v1/sops/{sop_id}", SOP_MANAGERS),
    Op("put", "/api/v1/sops/{sop_id}", SOP_MANAGERS, MATRIX_SOP),
    Op("post", "/api/v1/sops/{sop_id}/activate", SOP_MANAGERS),
    Op("post", "/api/v1/sops/{sop_id}/pause", SOP_MANAGERS, ok={409}),
    Op("post", "/api/v1/sops/{sop_id}/resume", SOP_MANAGERS, ok={409}),
    Op("get", "/api/v1/sops/{sop_id}/funnel", SOP_MANAGERS),
    # --- dashboards: panels for everyone within their scope; a goal ending before it starts
    # is refused (400) after the permission check; goal 999999 does not exist.
    Op("get", "/api/v1/dashboards", EVERYONE),
    Op("get", "/api/v1/dashboards/panels/{key}", EVERYONE),
    Op("get", "/api/v1/dashboards/panels/{key}/export", EVERYONE),
    Op("get", "/api/v1/dashboards/metrics", EVERYONE),
    Op("get", "/api/v1/dashboards/goals", EVERYONE),
    Op(
        "post",
        "/api/v1/dashboards/goals",
        GOAL_MANAGERS,
        {
            "name": "x",
            "metric": "paid",
            "target_kind": "absolute",
            "target_value": 1,
            "start": "2026-02-01",
            "deadline": "2026-01-01",
            "owner_id": "{member_id}",
        },
        ok={400},
    ),
    Op("get", "/api/v1/dashboards/goals/{goal_id}", EVERYONE, ok={404}),
    Op("delete", "/api/v1/dashboards/goals/{goal_id}", GOAL_MANAGERS, ok={404}),
    Op(
        "post",
        "/api/v1/dashboards/goals/{goal_id}/logs",
        EVERYONE,
        {"phase": "plan", "note": "x"},
        ok={404},
    ),
    # --- promotions: operations manage coupons, group-buys and commission rules; everyone sees
    # their own commissions. Unknown ids answer 404 after the permission check.
    Op("get", "/api/v1/promotions/coupon-templates", PROMOTERS),
    Op(
        "post",
        "/api/v1/promotions/coupon-templates",
        PROMOTERS,
        {
            "name": "满100减20",
            "kind": "amount",
            "amount_off_fen": 2000,
            "valid_days": 7,
            "total_stock": 10,
        },
        ok={201},
    ),
    Op("get", "/api/v1/promotions/coupon-templates/{template_id}", PROMOTERS, ok={404}),
    Op(
        "patch",
        "/api/v1/promotions/coupon-templates/{template_id}",
        PROMOTERS,
        {"name": "x"},
        ok={404},
    ),
    Op(
        "post",
        "/api/v1/promotions/coupon-templates/{template_id}/issue",
        PROMOTERS,
        {"customer_id": "{customer_id}"},
        ok={404},
    ),
    Op("get", "/api/v1/promotions/coupons", PROMOTERS),
    Op("post", "/api/v1/promotions/coupons/{coupon_id}/void", PROMOTERS, ok={404}),
    Op("get", "/api/v1/promotions/redemptions", PROMOTERS),
    Op("get", "/api/v1/promotions/groupbuys", PROMOTERS),
    Op(
        "post",
        "/api/v1/promotions/groupbuys",
        PROMOTERS,
        {
            "name": "x",
            "sku_id": 999999,
            "group_size": 2,
            "time_limit_minutes": 60,
            "group_price_fen": 100,
            "starts_at": "2026-01-01T00:00:00+00:00",
            "ends_at": "2026-02-01T00:00:00+00:00",
        },
        ok={404},
    ),
    Op("get", "/api/v1/promotions/groupbuys/{groupbuy_id}", PROMOTERS, ok={404}),
    Op("get", "/api/v1/promotions/groupbuys/{groupbuy_id}/teams", PROMOTERS, ok={404}),
    Op("get", "/api/v1/promotions/commission-rules", PROMOTERS),
    Op(
        "put",
        "/api/v1/promotions/commission-rules",
        PROMOTERS,
        {"sharer_kind": "staff", "rate_bp": 500, "tiers": []},
    ),
    Op(
        "post",
        "/api/v1/promotions/sharer-links",
        PROMOTERS,
        {"customer_id": "{customer_id}"},
        ok={201},
    ),
    Op("get", "/api/v1/promotions/commissions", EVERYONE),
    Op("get", "/api/v1/promotions/commissions/statements", EVERYONE),
    # --- shop: carol's customer's unpaid order is visible to company-wide roles only (a
    # manager may refund, but not outside their department: 404); refunding it unpaid is a
    # conflict (409); importing without a file is refused (400) after the check.
    Op("get", "/api/v1/shop/products", EVERYONE),
    Op("post", "/api/v1/shop/products", SHOP_MANAGERS, {"name": "新品"}, ok={201}),
    Op("put", "/api/v1/shop/products/{product_id}", SHOP_MANAGERS, {"name": "矩阵商品"}),
    Op(
        "post",
        "/api/v1/shop/products/{product_id}/skus",
        SHOP_MANAGERS,
        {"name": "大", "price_fen": 200},
        ok={201},
    ),
    Op("put", "/api/v1/shop/skus/{sku_id}", SHOP_MANAGERS, {"name": "标准", "price_fen": 100}),
    Op("post", "/api/v1/shop/skus/{sku_id}/stock", SHOP_MANAGERS, {"delta": 5}),
    Op("get", "/api/v1/shop/orders", EVERYONE),
    Op("get", "/api/v1/shop/orders/{order_id}", COMPANY_WIDE),
    Op(
        "post",
        "/api/v1/shop/orders/{order_id}/refund",
        COMPANY_WIDE,
        {"amount_fen": 1},
        ok={409},
    ),
    Op("post", "/api/v1/shop/orders/{order_id}/cancel", COMPANY_WIDE),
    Op("get", "/api/v1/shop/links", EVERYONE),
    Op("get", "/api/v1/shop/payment-settings", SHOP_MANAGERS),
    Op(
        "put",
        "/api/v1/shop/payment-settings",
        SHOP_MANAGERS,
        {"mchid": "1900000109", "appid": "wx_matrix", "api_v3_key": "k" * 32},
    ),
    Op("get", "/api/v1/shop/external-shops", SHOP_MANAGERS),
    Op(
        "post",
        "/api/v1/shop/external-shops",
        SHOP_MANAGERS,
        {"key": "youzan", "name": "有赞"},
        ok={201},
    ),
    Op("post", "/api/v1/shop/external-shops/{shop_key}/import", SHOP_MANAGERS, ok={400}),
    # insights: everyone within their scope; record 999999 does not exist; carol's customer and
    # the tenant's models have not been scored/fitted in the matrix (404 after the checks)
    Op("get", "/api/v1/insights/churn", EVERYONE),
    Op("get", "/api/v1/insights/churn/records", EVERYONE),
    Op(
        "post",
        "/api/v1/insights/churn/records/{churn_record_id}/reason",
        EVERYONE,
        {"reason": "价格"},
        ok={404},
    ),
    Op("get", "/api/v1/insights/at-risk", EVERYONE),
    Op("get", "/api/v1/insights/value", EVERYONE),
    Op("get", "/api/v1/insights/customers/{customer_id}", COMPANY_WIDE, ok={404}),
    Op("get", "/api/v1/insights/model", EVERYONE, ok={404}),
]

# Console pages: url name → roles that may open it (GET).
TEAM_API = [
    Op("get", "/api/v1/team/assets", ASSET_VIEWERS),
    Op("patch", "/api/v1/team/assets/{asset_id}", ADMINS, body={"holder": "前台"}),
    Op("post", "/api/v1/team/assets/{asset_id}/stage", ADMINS, body={"stage": "warming"}),
    # successor = the account itself: refused after the permission check, nothing sent
    Op(
        "post",
        "/api/v1/team/assets/{asset_id}/hand-back",
        ADMINS,
        body={"successor_id": "{member_id}"},
        ok={400},
    ),
    Op("post", "/api/v1/team/inventories", ADMINS, body={"name": "盘号"}, ok={201}),
    Op("get", "/api/v1/team/inventories/{run_id}", ASSET_VIEWERS, ok={404}),
    Op(
        "post",
        "/api/v1/team/inventories/{run_id}/items/{inventory_item_id}",
        ASSET_VIEWERS,
        body={"holder_confirmed": True, "friends_counted": 1, "data_backed_up": True},
        ok={404},
    ),
    Op("post", "/api/v1/team/inventories/{run_id}/close", ADMINS, ok={404}),
    Op("get", "/api/v1/team/performance", EVERYONE),
    Op(
        "post",
        "/api/v1/team/commission-schemes",
        ADMINS,
        body={"name": "阶梯", "tiers": [{"from_fen": 0, "rate_bp": 100}]},
        ok={201},
    ),
    Op(
        "put",
        "/api/v1/team/quality-targets",
        ADMINS,
        body={"task_on_time_pct": 90, "tagged_pct": 80, "moments_per_day": 1},
    ),
]
API_MATRIX += TEAM_API

# masssend: acme's story customers are not followed by anyone, so a create is refused (400)
# after the permission check; the upload without a file likewise.
MASSSEND_API = [
    Op("get", "/api/v1/masssends", MASS_SENDERS),
    Op(
        "post",
        "/api/v1/masssends/preview",
        MASS_SENDERS,
        {
            "kind": "customers",
            "audience_kind": "expression",
            "audience": {"expression": "stage:normal"},
        },
    ),
    Op("post", "/api/v1/masssends/audience/upload", MASS_SENDERS, ok={400}),
    Op(
        "post",
        "/api/v1/masssends",
        MASS_SENDERS,
        {
            "kind": "customers",
            "name": "矩阵",
            "audience_kind": "expression",
            "audience": {"expression": "stage:normal"},
            "text": "你好",
        },
        ok={400},
    ),
    Op("get", "/api/v1/masssends/{mass_send_id}", MASS_SENDERS, ok={404}),
    Op("get", "/api/v1/masssends/{mass_send_id}/recipients", MASS_SENDERS, ok={404}),
    Op("post", "/api/v1/masssends/{mass_send_id}/cancel", MASS_SENDERS, ok={404}),
    Op("post", "/api/v1/masssends/{mass_send_id}/sync", MASS_SENDERS, ok={404}),
    Op("post", "/api/v1/masssends/{mass_send_id}/remind", MASS_SENDERS, ok={404}),
]
API_MATRIX += MASSSEND_API

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
    # workspace
    "console:workspace_scripts": EVERYONE,
    "console:workspace_overview": WORKSPACE_MANAGERS,
    "console:workspace_scripts_manage": WORKSPACE_MANAGERS,
    # content
    "console:content": EVERYONE,
    "console:content_new": CONTENT_MANAGERS,
    "console:content_staff_radar": EVERYONE,
    # sop
    "console:sops": SOP_MANAGERS,
    "console:sop_new": SOP_MANAGERS,
    # dashboards
    "console:dashboard": EVERYONE,
    "console:goals": EVERYONE,
    # promotions
    "console:promotions_coupons": PROMOTERS,
    "console:promotions_coupon_grants": PROMOTERS,
    "console:promotions_coupon_redemptions": PROMOTERS,
    "console:promotions_groupbuys": PROMOTERS,
    "console:promotions_groupbuy_teams": PROMOTERS,
    "console:promotions_commissions": EVERYONE,
    "console:promotions_commission_rules": PROMOTERS,
    # shop
    "console:shop_products": SHOP_MANAGERS,
    "console:shop_orders": EVERYONE,
    "console:shop_links": EVERYONE,
    "console:shop_settings": SHOP_MANAGERS,
    # insights
    "console:insights_churn": EVERYONE,
    "console:insights_at_risk": EVERYONE,
    "console:insights_value": EVERYONE,
    # team
    "console:team_assets": ASSET_VIEWERS,
    "console:team_inventory": ASSET_VIEWERS,
    "console:team_performance": EVERYONE,
    "console:team_performance_export": EVERYONE,
    # masssend
    "console:masssends": MASS_SENDERS,
    "console:masssend_new": MASS_SENDERS,
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
    # workspace: carol's task is hers alone; script 999999 does not exist
    "console:workspace_task_done": ("post", set()),
    "console:workspace_script_use": ("post", set()),
    # content: every member sees an item's radar (numbers in their scope); editing is managers'
    "console:content_item": ("get", EVERYONE),
    "console:content_edit": ("get", CONTENT_MANAGERS),
    # sop: one draft SOP's page and editor
    "console:sop": ("get", SOP_MANAGERS),
    "console:sop_edit": ("get", SOP_MANAGERS),
    # dashboards: a panel export in scope; an invalid goal form goes back with a message;
    # goal 999999 does not exist
    "console:dashboard_export": ("get", EVERYONE),
    "console:goal_create": ("post", GOAL_MANAGERS),
    "console:goal_log": ("post", set()),
    # shop: the catalog is managers'; carol's customer's order (cancelled by the allowed roles);
    # an import without a file goes back with a message
    "console:shop_product": ("get", SHOP_MANAGERS),
    "console:shop_order": ("get", COMPANY_WIDE),
    "console:shop_order_refund": ("post", COMPANY_WIDE),
    "console:shop_import": ("post", SHOP_MANAGERS),
    # insights: churn record 999999 does not exist
    "console:insights_churn_reason": ("post", set()),
    # team: carol's account (outside the manager's department); the stage move is admins'
    "console:team_asset": ("get", ADMINS),
    "console:team_asset_action": ("post", ADMINS),
    # masssend: send 999999 does not exist (the pages are tested in siyu/masssend/tests)
    "console:masssend": ("get", set()),
    "console:masssend_progress": ("get", set()),
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
    from siyu.shop.models import Order
    from siyu.team.models import AccountAsset

    with tenant_context(acme.tenant):
        customer, twin, phone = _matrix_customers(acme)
        import_job = _matrix_import_job(acme)
        campaign = _matrix_campaign(acme)
        task = _matrix_task(acme)
        content_item = _matrix_content_item(acme)
        sop = _matrix_sop(acme)
        product, _sku, order = _matrix_shop(acme)
        asset = _matrix_asset(acme)
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
        "console:workspace_task_done": ({"task_id": task}, {}),
        "console:workspace_script_use": ({"script_id": 999999}, {}),
        "console:content_item": ({"item_id": content_item}, {}),
        "console:content_edit": ({"item_id": content_item}, {}),
        "console:sop": ({"sop_id": sop}, {}),
        "console:sop_edit": ({"sop_id": sop}, {}),
        "console:dashboard_export": ({}, {"panel": "assets"}),
        "console:goal_create": ({}, {"name": "x"}),
        "console:goal_log": ({}, {"goal": "999999", "phase": "plan", "note": "x"}),
        "console:shop_product": ({"product_id": product}, {}),
        "console:shop_order": ({"order_id": order}, {}),
        "console:shop_order_refund": ({"order_id": order}, {"form": "cancel"}),
        "console:shop_import": ({}, {"shop": "matrix"}),
        "console:insights_churn_reason": ({"record_id": 999999}, {"reason": "价格"}),
        "console:team_asset": ({"asset_id": asset}, {}),
        "console:team_asset_action": ({"asset_id": asset}, {"op": "stage", "stage": "warming"}),
        "console:masssend": ({"mass_send_id": 999999}, {}),
        "console:masssend_progress": ({"mass_send_id": 999999}, {}),
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
            "console:shop_order_refund": Order.objects.get(pk=order).status == "cancelled",
            "console:team_asset_action": AccountAsset.objects.get(pk=asset).stage == "warming",
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
