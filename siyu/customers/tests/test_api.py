"""The customer API: one call shows the 360 profile; the timeline filters and pages; writes
validate; scopes and tenants hold."""

import json
from datetime import UTC, datetime, timedelta

from django.test import Client

from siyu.core.services import event_record
from siyu.core.tenancy import tenant_context
from siyu.customers.attributes import field_create
from siyu.customers.models import Customer, CustomerIdentity
from siyu.customers.services import relation_added, relation_deleted
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.stories import Company

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def alice_customer(acme: Company, ext: str = "wm-api") -> Customer:
    with tenant_context(acme.tenant):
        relation = relation_added(
            staff=acme["alice"], external_userid=ext, at=AT, source="wecom", state="ch:9"
        )
        assert relation is not None
        return relation.customer


def patch(client: Client, path: str, body: dict[str, object]):  # noqa: ANN201
    return client.patch(path, data=json.dumps(body), content_type="application/json")


def test_the_profile_shows_identities_relations_tags_stage_and_fields(acme, login) -> None:
    customer = alice_customer(acme)
    with tenant_context(acme.tenant):
        relation_added(staff=acme["bob"], external_userid="wm-api", at=AT, source="wecom")
        relation_deleted(
            staff=acme["bob"],
            external_userid="wm-api",
            at=AT + timedelta(days=1),
            by="customer",
            source="wecom",
        )
        group = TagGroup.objects.create(name="地区")
        tag = Tag.objects.create(group=group, name="上海")
        CustomerTag.objects.create(customer=customer, tag=tag, staff=acme["alice"], source="manual")
        field_create(key="city", name="城市", kind="text")
        CustomerIdentity.objects.create(customer=customer, kind="phone", value="13812345678")
    body = login.token(acme["ops"]).get(f"/api/v1/customers/{customer.pk}").json()
    assert body["stage"] == {"key": "normal", "name": "普通"}
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("external_userid", "wm-api"),
        ("phone", "138****5678"),  # ops may not see phone numbers
    }
    statuses = {r["staff_userid"]: r["status"] for r in body["relations"]}
    assert statuses == {"alice": "active", "bob": "customer_deleted"}
    assert body["relations"][0]["state"] in {"ch:9", ""}
    (applied,) = body["tags"]
    assert (applied["group"], applied["name"], applied["source"], applied["staff_userid"]) == (
        "地区",
        "上海",
        "manual",
        "alice",
    )
    assert body["fields"] == [{"key": "city", "name": "城市", "kind": "text", "value": None}]
    admin_view = login.token(acme["admin"]).get(f"/api/v1/customers/{customer.pk}").json()
    assert ("phone", "13812345678") in {(i["kind"], i["value"]) for i in admin_view["identities"]}


def test_the_timeline_is_newest_first_filterable_and_paged(acme, login) -> None:
    customer = alice_customer(acme)
    with tenant_context(acme.tenant):
        for day in range(1, 4):
            event_record(
                type="customer.joined_group",
                source="wecom",
                customer_id=customer.pk,
                occurred_at=AT + timedelta(days=day),
                payload={"chat_id": f"wr{day}"},
            )
    client = login.token(acme["alice"])
    url = f"/api/v1/customers/{customer.pk}/timeline"
    everything = client.get(url).json()
    assert [e["type"] for e in everything][:3] == ["customer.joined_group"] * 3
    assert everything[-1]["type"] == "customer.added"
    groups = client.get(url, {"type": "customer.joined_group", "limit": 2}).json()
    assert [e["payload"]["chat_id"] for e in groups] == ["wr3", "wr2"]
    older = client.get(
        url, {"type": "customer.joined_group", "before": groups[-1]["occurred_at"]}
    ).json()
    assert [e["payload"]["chat_id"] for e in older] == ["wr1"]
    bad = client.get(url, {"type": "customer.nope"})
    assert bad.status_code == 400
    assert "unknown event type" in bad.json()["message"]


def test_a_merged_customers_events_show_on_the_survivor(acme, login) -> None:
    survivor = alice_customer(acme, "wm-s")
    absorbed = alice_customer(acme, "wm-a")
    client = login.token(acme["ops"])
    response = client.post(
        f"/api/v1/customers/{survivor.pk}/merge",
        data=json.dumps({"absorbed_id": absorbed.pk}),
        content_type="application/json",
    )
    assert response.status_code == 200
    timeline = client.get(f"/api/v1/customers/{survivor.pk}/timeline").json()
    added = [e["payload"]["external_userid"] for e in timeline if e["type"] == "customer.added"]
    assert sorted(added) == ["wm-a", "wm-s"]
    assert client.get(f"/api/v1/customers/{absorbed.pk}").status_code == 404
    listed = client.get("/api/v1/customers").json()
    assert [c["id"] for c in listed["items"]] == [survivor.pk]


def test_bad_writes_change_nothing(acme, login) -> None:
    customer = alice_customer(acme)
    with tenant_context(acme.tenant):
        field_create(key="level", name="等级", kind="number")
    client = login.token(acme["alice"])
    url = f"/api/v1/customers/{customer.pk}"
    cases: list[tuple[dict[str, object], int]] = [
        ({"stage": "vip"}, 400),
        ({"attributes": {"level": "high"}}, 400),
        ({"attributes": {"nope": 1}}, 400),
        ({"stage": "paid", "colour": "red"}, 422),
    ]
    for body, status in cases:
        response = patch(client, url, body)
        assert response.status_code == status, body
        assert set(response.json()) >= {"code", "message"}
    with tenant_context(acme.tenant):
        fresh = Customer.objects.get(pk=customer.pk)
    assert (fresh.stage, fresh.attributes) == ("normal", {})
    ok = patch(client, url, {"stage": "paid", "attributes": {"level": 2}})
    assert ok.status_code == 200
    assert ok.json()["stage"]["key"] == "paid"


def test_scopes_and_tenants_hide_customers(acme, globex, login) -> None:
    customer = alice_customer(acme)
    assert login.token(acme["bob"]).get(f"/api/v1/customers/{customer.pk}").status_code == 404
    assert login.token(acme["manager"]).get(f"/api/v1/customers/{customer.pk}").status_code == 200
    outsider = login.token(globex["admin"])
    assert outsider.get(f"/api/v1/customers/{customer.pk}").status_code == 404
    assert outsider.get("/api/v1/customers").json()["count"] == 0
    refused = patch(outsider, f"/api/v1/customers/{customer.pk}", {"stage": "paid"})
    assert refused.status_code == 404
    with tenant_context(acme.tenant):
        assert Customer.objects.get(pk=customer.pk).stage == "normal"


def test_the_list_finds_customers_by_identifier_and_unassigned(acme, login) -> None:
    customer = alice_customer(acme)
    alice_customer(acme, "wm-other")
    client = login.token(acme["admin"])
    found = client.get("/api/v1/customers", {"q": "wm-api"}).json()
    assert [c["id"] for c in found["items"]] == [customer.pk]
    assert client.get("/api/v1/customers", {"unassigned": True}).json()["count"] == 0
    with tenant_context(acme.tenant):
        alice = acme["alice"]
        alice.status = "left"
        alice.save(update_fields=["status"])
    assert client.get("/api/v1/customers", {"unassigned": True}).json()["count"] == 2
