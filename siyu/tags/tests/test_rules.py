"""Auto-tag rules: "opened the pricing page twice in 7 days → 高意向", applied once."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from siyu.core import events as registry
from siyu.core.models import Event, EventDelivery
from siyu.core.services import event_delivery_run, event_record
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer
from siyu.customers.services import relation_added
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagRule
from siyu.testing.stories import Company

PAGE_VIEWED = registry.event_type("test.page_viewed", "测试：浏览页面")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(in_acme: Company) -> dict[str, Any]:
    group = TagGroup.objects.create(name="意向", wecom_id="et-g1")
    hot = Tag.objects.create(group=group, name="高意向", wecom_id="et-t1")
    relation = relation_added(staff=in_acme["alice"], external_userid="wm-1", at=T0, source="wecom")
    assert relation is not None
    rule = TagRule.objects.create(
        name="两次看价格页",
        event_type=PAGE_VIEWED,
        conditions={"page": "pricing"},
        threshold=2,
        window_days=7,
        tag=hot,
    )
    return {"customer": relation.customer, "tag": hot, "rule": rule}


def _view(customer: Customer, at: datetime, page: str = "pricing") -> list[str]:
    """Record a page view and run the auto-tag deliveries it caused, as the worker would."""
    with transaction.atomic():
        event = event_record(
            type=PAGE_VIEWED,
            source="h5",
            customer_id=customer.pk,
            occurred_at=at,
            payload={"page": page},
        )
    deliveries = EventDelivery.objects.filter(event=event, subscriber="tags.auto_tag")
    return [event_delivery_run(delivery_id=d.pk) for d in deliveries]


def test_the_second_matching_view_within_the_window_tags_once(world: dict[str, Any]) -> None:
    customer = world["customer"]
    assert _view(customer, T0) == ["done"]
    assert not CustomerTag.objects.exists()
    _view(customer, T0 + timedelta(days=1), page="about")  # does not match the condition
    assert not CustomerTag.objects.exists()
    _view(customer, T0 + timedelta(days=6))
    row = CustomerTag.objects.get()
    assert (row.tag, row.source, row.rule, row.staff.userid) == (  # type: ignore[union-attr]
        world["tag"],
        "rule",
        world["rule"],
        "alice",
    )
    event = Event.objects.filter(type="customer.tags_changed").get()
    assert (event.source, event.payload["rule_id"], event.payload["added_ids"]) == (
        "system",
        world["rule"].pk,
        [world["tag"].pk],
    )
    _view(customer, T0 + timedelta(days=6, hours=1))
    assert CustomerTag.objects.count() == 1
    assert Event.objects.filter(type="customer.tags_changed").count() == 1


def test_views_outside_the_window_do_not_count(world: dict[str, Any]) -> None:
    customer = world["customer"]
    _view(customer, T0)
    _view(customer, T0 + timedelta(days=7, seconds=1))
    assert not CustomerTag.objects.exists()
    _view(customer, T0 + timedelta(days=8))
    assert CustomerTag.objects.count() == 1


def test_disabled_rules_and_other_customers_count_nothing(
    world: dict[str, Any], in_acme: Company
) -> None:
    other = relation_added(staff=in_acme["bob"], external_userid="wm-2", at=T0, source="wecom")
    assert other is not None
    _view(other.customer, T0)
    _view(world["customer"], T0 + timedelta(hours=1))
    assert not CustomerTag.objects.exists()
    rule = world["rule"]
    rule.enabled = False
    rule.save()  # as tag_rule_update does: the watched event types are reloaded
    assert _view(world["customer"], T0 + timedelta(hours=2)) == []  # no delivery at all
    assert not CustomerTag.objects.exists()


def test_rules_of_another_tenant_do_not_fire(
    world: dict[str, Any], in_acme: Company, globex: Company
) -> None:
    with tenant_context(globex.tenant):
        relation = relation_added(
            staff=globex["dave"], external_userid="wm-g", at=T0, source="wecom"
        )
        assert relation is not None
        for hours in (1, 2):
            assert _view(relation.customer, T0 + timedelta(hours=hours)) == []
        assert not CustomerTag.objects.exists()


def _rule(client: Any, body: dict[str, Any], method: str = "post", path: str = "") -> Any:
    return getattr(client, method)(
        f"/api/v1/tags/rules{path}", data=body, content_type="application/json"
    )


def test_rules_are_managed_through_the_api(world: dict[str, Any], in_acme: Company, login) -> None:
    ops = login.token(in_acme["ops"])
    created = _rule(
        ops,
        {
            "name": "入群即意向",
            "event_type": "customer.joined_group",
            "tag_id": world["tag"].pk,
            "threshold": 1,
            "window_days": 30,
            "conditions": {"chat_kind": "vip", "count": 2, "new": True},
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["tag_name"], body["created_by_userid"], body["conditions"]) == (
        "高意向",
        "ops",
        {"chat_kind": "vip", "count": 2, "new": True},
    )
    patched = _rule(ops, {"enabled": False}, method="patch", path=f"/{body['id']}")
    assert patched.json()["enabled"] is False
    listed = ops.get("/api/v1/tags/rules").json()
    assert [r["name"] for r in listed] == ["两次看价格页", "入群即意向"]
    assert _rule(ops, {}, method="delete", path=f"/{body['id']}").status_code == 204
    assert not TagRule.objects.filter(pk=body["id"]).exists()


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"event_type": "no.such_event"}, 400, "invalid_input"),
        ({"threshold": 0}, 400, "invalid_input"),
        ({"threshold": 1001}, 400, "invalid_input"),
        ({"window_days": 0}, 400, "invalid_input"),
        ({"window_days": 366}, 400, "invalid_input"),
        ({"conditions": {"bad key": "x"}}, 400, "invalid_input"),
        ({"conditions": {f"k{i}": i for i in range(6)}}, 400, "invalid_input"),
        ({"name": ""}, 400, "invalid_input"),
        ({"name": "两次看价格页"}, 409, "rule_name_taken"),
        ({"tag_id": 999999}, 404, "not_found"),
        ({"conditions": {"page": ["a"]}}, 422, "invalid_request"),
    ],
)
def test_bad_rules_are_refused(
    world: dict[str, Any],
    in_acme: Company,
    login,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    body = {"name": "新规则", "event_type": PAGE_VIEWED, "tag_id": world["tag"].pk, **change}
    response = login.token(in_acme["ops"]).post(
        "/api/v1/tags/rules", data=body, content_type="application/json"
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert list(TagRule.objects.values_list("name", flat=True)) == ["两次看价格页"]


def test_a_tag_of_another_tenant_is_not_found(
    world: dict[str, Any], in_acme: Company, globex: Company, login
) -> None:
    with tenant_context(globex.tenant):
        group = TagGroup.objects.create(name="G", wecom_id="et-gx")
        theirs = Tag.objects.create(group=group, name="外部", wecom_id="et-tx")
    response = login.token(in_acme["ops"]).post(
        "/api/v1/tags/rules",
        data={"name": "偷标签", "event_type": PAGE_VIEWED, "tag_id": theirs.pk},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert TagRule.objects.count() == 1


def test_staff_may_not_manage_rules(world: dict[str, Any], in_acme: Company, login) -> None:
    response = login.token(in_acme["alice"]).post(
        "/api/v1/tags/rules",
        data={"name": "x", "event_type": PAGE_VIEWED, "tag_id": world["tag"].pk},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert TagRule.objects.count() == 1


def test_rule_changes_are_audited(acme: Company, login) -> None:
    from siyu.audit.models import AuditEntry

    with tenant_context(acme.tenant):
        group = TagGroup.objects.create(name="意向")
        tag = Tag.objects.create(group=group, name="高意向")
    ops = login.token(acme["ops"])
    created = ops.post(
        "/api/v1/tags/rules",
        data={
            "name": "看了两次价格",
            "event_type": "customer.joined_group",
            "tag_id": tag.pk,
            "threshold": 2,
            "window_days": 7,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    assert ops.delete(f"/api/v1/tags/rules/{rule_id}").status_code == 204
    with tenant_context(acme.tenant):
        assert not TagRule.objects.filter(pk=rule_id).exists()
        actions = list(
            AuditEntry.objects.filter(action__startswith="tags.rule").values_list(
                "action", flat=True
            )
        )
    assert sorted(actions) == ["tags.rule_create", "tags.rule_delete"]


def test_which_events_rules_watch_is_read_once_per_rule_change_not_per_event(
    world: dict[str, Any],
) -> None:
    """Every event written asks each rule-driven subscriber whether it applies; the answer is
    cached per process and reloaded only when the tenant's rules version moves."""
    customer = world["customer"]
    assert _view(customer, T0) == ["done"]  # warms the cache
    with transaction.atomic():
        event_record(type="customer.updated", source="api", customer_id=customer.pk)
    assert not EventDelivery.objects.filter(
        subscriber="tags.auto_tag", event__type="customer.updated"
    ).exists()
    # A rule saved (in any process) bumps the version: the next event sees it.
    TagRule.objects.create(
        name="资料更新", event_type="customer.updated", threshold=1, window_days=1, tag=world["tag"]
    )
    with transaction.atomic():
        updated = event_record(type="customer.updated", source="api", customer_id=customer.pk)
    assert EventDelivery.objects.filter(subscriber="tags.auto_tag", event=updated).exists()
    # With the rules unchanged, the checks of all rule-driven subscribers cost one read
    # (the version) per event, whatever the number of rules.
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        event_record(type="customer.updated", source="api", customer_id=customer.pk)
    tables = ("tags_tagrule", "customers_lifecyclerule", "sop_sop", "webhooks_webhookendpoint")
    rule_reads = [q for q in captured.captured_queries if any(t in q["sql"] for t in tables)]
    version_reads = [q for q in captured.captured_queries if "rules_version" in q["sql"]]
    assert (len(rule_reads), len(version_reads)) == (0, 1)
