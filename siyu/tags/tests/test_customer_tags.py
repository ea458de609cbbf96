"""Tagging customers by hand: provenance kept here, the tag marked on the relation in WeCom."""

from datetime import timedelta
from typing import Any

import time_machine
from django.db import transaction
from django.utils import timezone

from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.models import StaffRelation
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.tags import services
from siyu.tags.models import CustomerTag, PushStatus, Tag, TagMarkPush
from siyu.testing.stories import Company
from siyu.wecom.callback.handlers import apply_contact
from siyu.wecom.client.client import WeComClient
from siyu.wecom.sync.services import reconcile


def _setup(company: Company, sandbox: Sandbox, login: Any) -> dict[str, Any]:
    """alice's and bob's customers in WeCom and in Siyu, and a 付费阶段 group."""
    corpid = company.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    alices = control.simulate(corpid, "add", userid="alice")["external_userid"]
    bobs = control.simulate(corpid, "add", userid="bob")["external_userid"]
    assert reconcile(company.tenant).status == "done"
    group = (
        login.token(company["ops"])
        .post(
            "/api/v1/tags/groups",
            data={"name": "付费阶段", "tags": ["意向", "付费"]},
            content_type="application/json",
        )
        .json()
    )
    with tenant_context(company.tenant):
        relation = StaffRelation.objects.get(external_userid=alices)
        bob_relation = StaffRelation.objects.get(external_userid=bobs)
    return {
        "corp": sandbox.world.corps[corpid],
        "alices": alices,
        "bobs": bobs,
        "customer": relation.customer_id,
        "bob_customer": bob_relation.customer_id,
        "intent": group["tags"][0],
        "paid": group["tags"][1],
    }


def _alice_tags_intent(alice: Any, s: dict[str, Any]) -> Any:
    """alice puts 意向 on her customer through the API; returns the response."""
    response = alice.post(
        f"/api/v1/tags/customers/{s['customer']}",
        data={"add": [s["intent"]["id"]]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response


def _has_intent(company: Company, s: dict[str, Any]) -> bool:
    with tenant_context(company.tenant):
        return CustomerTag.objects.filter(
            customer_id=s["customer"], tag_id=s["intent"]["id"]
        ).exists()


def _push_all(company: Company) -> set[str]:
    with tenant_context(company.tenant):
        pending = list(TagMarkPush.objects.filter(status=PushStatus.PENDING))
    return {services.tag_mark_push_send(push_id=p.pk) for p in pending}


def test_a_member_tags_their_customer_and_wecom_follows(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    s = _setup(wecom_acme, sandbox, login)
    alice = login.token(wecom_acme["alice"])
    response = _alice_tags_intent(alice, s)
    (row,) = response.json()
    assert (row["tag_name"], row["source"], row["staff_userid"], row["applied_by_userid"]) == (
        "意向",
        "manual",
        "alice",
        "alice",
    )
    with tenant_context(wecom_acme.tenant):
        event = Event.objects.filter(type="customer.tags_changed").latest("pk")
    assert event.payload["added"] == ["意向"]
    assert event.payload["added_ids"] == [s["intent"]["id"]]
    assert (event.payload["removed"], event.payload["removed_ids"]) == ([], [])
    assert event.payload["staff_userid"] == "alice"
    # Marked in WeCom once the job runs, on alice's relation.
    assert s["corp"].follow("alice", s["alices"]).tag_ids == []
    assert _push_all(wecom_acme) == {"done"}
    assert s["corp"].follow("alice", s["alices"]).tag_ids == [s["intent"]["wecom_id"]]

    # WeCom now carries it, so reconciliation keeps it — with its provenance.
    assert reconcile(wecom_acme.tenant).status == "done"
    with tenant_context(wecom_acme.tenant):
        kept = CustomerTag.objects.get(customer_id=s["customer"])
        assert (kept.source, kept.applied_by.userid) == ("manual", "alice")  # type: ignore[union-attr]

    removed = alice.post(
        f"/api/v1/tags/customers/{s['customer']}",
        data={"remove": [s["intent"]["id"]]},
        content_type="application/json",
    )
    assert removed.json() == []
    with tenant_context(wecom_acme.tenant):
        event = Event.objects.filter(type="customer.tags_changed").latest("pk")
    assert (event.payload["removed"], event.payload["removed_ids"]) == (
        ["意向"],
        [s["intent"]["id"]],
    )
    assert _push_all(wecom_acme) == {"done"}
    assert s["corp"].follow("alice", s["alices"]).tag_ids == []


def test_an_admin_tag_hangs_on_the_customers_relation(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    s = _setup(wecom_acme, sandbox, login)
    admin = login.token(wecom_acme["admin"])
    response = admin.post(
        f"/api/v1/tags/customers/{s['customer']}",
        data={"add": [s["paid"]["id"]]},
        content_type="application/json",
    )
    (row,) = response.json()
    assert (row["staff_userid"], row["applied_by_userid"]) == ("alice", "admin")
    assert _push_all(wecom_acme) == {"done"}
    assert s["corp"].follow("alice", s["alices"]).tag_ids == [s["paid"]["wecom_id"]]


def test_members_cannot_tag_others_customers_or_unknown_tags(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    s = _setup(wecom_acme, sandbox, login)
    alice = login.token(wecom_acme["alice"])
    for customer, tags, status in [
        (s["bob_customer"], [s["intent"]["id"]], 404),
        (s["customer"], [999999], 404),
        (s["customer"], [s["intent"]["id"], 999999], 404),
    ]:
        response = alice.post(
            f"/api/v1/tags/customers/{customer}",
            data={"add": tags},
            content_type="application/json",
        )
        assert response.status_code == status, response.content
        assert response.json()["code"] == "not_found"
    both = alice.post(
        f"/api/v1/tags/customers/{s['customer']}",
        data={"add": [s["intent"]["id"]], "remove": [s["intent"]["id"]]},
        content_type="application/json",
    )
    assert both.status_code == 400
    with tenant_context(wecom_acme.tenant):
        assert not CustomerTag.objects.exists()
        assert not TagMarkPush.objects.exists()
        assert not Event.objects.filter(type="customer.tags_changed").exists()


def test_tags_apply_is_the_shared_entry_and_is_idempotent(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    s = _setup(wecom_acme, sandbox, login)
    with tenant_context(wecom_acme.tenant):
        customer = StaffRelation.objects.get(external_userid=s["alices"]).customer
        with transaction.atomic():
            first = services.tags_apply(customer, [s["paid"]["id"]], source="import")
        with transaction.atomic():
            again = services.tags_apply(customer, [s["paid"]["id"]], source="import")
        assert [t.name for t in first] == ["付费"]
        assert again == []
        row = CustomerTag.objects.get(customer=customer)
        assert (row.source, row.staff.userid, row.applied_by) == ("import", "alice", None)  # type: ignore[union-attr]
        assert Event.objects.filter(type="customer.tags_changed").count() == 1
        assert TagMarkPush.objects.count() == 1


def test_a_push_for_a_deleted_tag_is_parked_not_retried(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    s = _setup(wecom_acme, sandbox, login)
    login.token(wecom_acme["alice"]).post(
        f"/api/v1/tags/customers/{s['customer']}",
        data={"add": [s["intent"]["id"]]},
        content_type="application/json",
    )
    SandboxControl(sandbox.base_url).simulate(
        wecom_acme.tenant.corp_id, "admin_delete_tag", tag_id=s["intent"]["wecom_id"]
    )
    assert _push_all(wecom_acme) == {"dead"}
    with tenant_context(wecom_acme.tenant):
        push = TagMarkPush.objects.get()
        assert "40068" in push.last_error
        assert Tag.objects.filter(pk=s["intent"]["id"]).exists()  # until the callback or sync


def test_a_reconciliation_before_the_push_keeps_the_tag_just_applied(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    s = _setup(wecom_acme, sandbox, login)
    _alice_tags_intent(login.token(wecom_acme["alice"]), s)
    # WeCom has not heard of the tag yet: the push is still in the outbox.
    assert reconcile(wecom_acme.tenant).status == "done"
    assert _has_intent(wecom_acme, s)
    assert _push_all(wecom_acme) == {"done"}
    assert reconcile(wecom_acme.tenant).status == "done"
    assert _has_intent(wecom_acme, s)


def test_an_answer_read_before_the_push_landed_does_not_undo_the_tag(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    # Given a tag alice just applied, and WeCom's view of the customer read a moment before
    # the push marked it (what the add's enrichment does while the push is in flight),
    s = _setup(wecom_acme, sandbox, login)
    _alice_tags_intent(login.token(wecom_acme["alice"]), s)
    with WeComClient.for_tenant(wecom_acme.tenant) as client:
        stale = client.external_contact(s["alices"])
    assert not stale["follow_user"][0].get("tag_id")
    assert _push_all(wecom_acme) == {"done"}

    def tagged() -> bool:
        with tenant_context(wecom_acme.tenant), transaction.atomic():
            apply_contact(stale, at=timezone.now(), key=None)
        return _has_intent(wecom_acme, s)

    # when that answer is applied after the push is done, the tag stays;
    assert tagged()
    # once the push has settled, WeCom's answer is the truth again (here: the tag is gone).
    with time_machine.travel(timezone.now() + services.PUSH_SETTLE + timedelta(seconds=1)):
        assert not tagged()
