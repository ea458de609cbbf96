"""Transfers against the sandbox over HTTP: WeCom's answers are the truth, nothing is lost."""

import json
from typing import Any

import pytest
from django.test import Client

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import restrict_customers
from siyu.audit.models import AuditEntry
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, CustomerIdentity, RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.testing.stories import Company
from siyu.transfers.models import ChatItemStatus, ItemStatus, JobStatus, TransferItem, TransferJob
from siyu.transfers.services import unassigned_sync
from siyu.transfers.tasks import poll_job
from siyu.wecom.callback.inbox import inbox_process
from siyu.wecom.client.client import WeComClient
from siyu.wecom.models import CallbackInbox, InboxStatus, RateWindow
from siyu.wecom.sync.services import reconcile

DAY = 86400


def _seed(control: SandboxControl, corp: str, userid: str, n: int) -> list[str]:
    results = control.batch(corp, [("add", {"userid": userid}) for _ in range(n)])
    return [r["result"]["external_userid"] for r in results]


def _import(company: Company) -> None:
    run = reconcile(company.tenant)
    assert run.status == "done", run.error


def _ids(company: Company, exts: list[str]) -> list[int]:
    with tenant_context(company.tenant):
        of = dict(
            CustomerIdentity.objects.filter(value__in=exts).values_list("value", "customer_id")
        )
    return [of[e] for e in exts]


def _post(client: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def _transfer(client: Client, company: Company, handover: str, takeover: str, **body: Any) -> Any:
    return _post(
        client,
        "/api/v1/transfers",
        {"handover_id": company[handover].pk, "takeover_id": company[takeover].pk, **body},
    )


def _relation(company: Company, userid: str, ext: str) -> StaffRelation:
    with tenant_context(company.tenant):
        return StaffRelation.objects.get(staff__userid=userid, external_userid=ext)


def _run_deliveries(company: Company) -> None:
    with tenant_context(company.tenant):
        pending = list(
            EventDelivery.objects.filter(status=DeliveryStatus.PENDING).values_list("pk", flat=True)
        )
    for pk in pending:
        event_delivery_run(delivery_id=pk)


def test_onjob_transfer_waits_then_is_accepted_and_polling_again_changes_nothing(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, corp, "alice", 3)
    _import(wecom_acme)

    response = _transfer(
        login.token(wecom_acme["manager"]),
        wecom_acme,
        "alice",
        "bob",
        customer_ids=_ids(wecom_acme, exts),
        message="您好，之后由 Bob 为您服务",
    )

    assert response.status_code == 201, response.content
    job = response.json()
    assert (job["kind"], job["status"]) == ("onjob", "open")
    assert [i["status"] for i in job["items"]] == ["waiting"] * 3
    waiting = sandbox.world.corps[corp].transfers
    assert {(t.handover_userid, t.takeover_userid, t.status) for t in waiting} == {
        ("alice", "bob", 2)
    }
    poll_job(wecom_acme.tenant.pk, job["id"])  # takes WeCom's scheduled completion time
    assert poll_job(wecom_acme.tenant.pk, job["id"]) == 0  # still within the customer's 24 h
    with tenant_context(wecom_acme.tenant):
        statuses = set(TransferItem.objects.values_list("status", flat=True))
        assert statuses == {ItemStatus.WAITING}
    with tenant_context(wecom_acme.tenant):
        entry = AuditEntry.objects.get(action="customers.transfer")
        assert entry.details["customers"] == 3 and entry.actor == wecom_acme["manager"]

    control.advance_clock(DAY + 1)
    assert poll_job(wecom_acme.tenant.pk, job["id"]) == 3

    detail = login.token(wecom_acme["manager"]).get(f"/api/v1/transfers/{job['id']}").json()
    assert detail["status"] == "done"
    assert [i["status"] for i in detail["items"]] == ["accepted"] * 3
    for ext in exts:
        old, new = _relation(wecom_acme, "alice", ext), _relation(wecom_acme, "bob", ext)
        assert (old.status, old.delete_source) == (
            RelationStatus.STAFF_DELETED,
            "DELETE_BY_TRANSFER",
        )
        assert (new.status, new.add_way, new.oper_userid) == (RelationStatus.ACTIVE, 201, "alice")
    with tenant_context(wecom_acme.tenant):
        moved = Event.objects.filter(type="customer.transferred").order_by("pk")
        assert [(e.payload["from_userid"], e.payload["to_userid"]) for e in moved] == [
            ("alice", "bob")
        ] * 3
        events_before = Event.objects.count()

    # The periodic poll may run again (or twice at once): nothing changes, nothing is recorded.
    assert poll_job(wecom_acme.tenant.pk, job["id"]) == 0
    with tenant_context(wecom_acme.tenant):
        assert Event.objects.count() == events_before
        assert TransferJob.objects.get(pk=job["id"]).status == JobStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_a_refusal_keeps_the_customer_with_the_handover_and_transferable(
    wecom_acme: Company, sandbox: Sandbox, live_server: Any, login: Any
) -> None:
    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, corp, "alice", 2)
    _import(wecom_acme)
    control.create_corp(
        corp, tenant.contact_secret, callback_url=f"{live_server.url}/wecom/callback/{tenant.slug}/"
    )
    client = login.token(wecom_acme["admin"])
    job = _transfer(client, wecom_acme, "alice", "bob", customer_ids=_ids(wecom_acme, exts)).json()

    # The customer refuses in WeChat: WeCom calls back transfer_fail.
    control.simulate(corp, "refuse_transfer", external_userid=exts[0])
    assert control.flush_callbacks()
    with tenant_context(tenant):
        inbox = list(
            CallbackInbox.objects.filter(status=InboxStatus.PENDING).values_list("pk", flat=True)
        )
    assert [inbox_process(inbox_id=pk) for pk in inbox] == ["done"]
    _run_deliveries(wecom_acme)

    with tenant_context(tenant):
        items = {i.external_userid: i.status for i in TransferItem.objects.filter(job_id=job["id"])}
    assert items == {exts[0]: ItemStatus.REFUSED, exts[1]: ItemStatus.WAITING}
    # Still alice's customer, visible to her and to the manager, and transferable again.
    assert _relation(wecom_acme, "alice", exts[0]).status == RelationStatus.ACTIVE
    customer_id = _ids(wecom_acme, exts[:1])[0]
    with tenant_context(tenant):
        visible = restrict_customers(Customer.objects.all(), wecom_acme["alice"])
        assert visible.filter(pk=customer_id).exists()
    again = _transfer(client, wecom_acme, "alice", "carol", customer_ids=[customer_id])
    assert again.status_code == 201, again.content
    assert again.json()["items"][0]["status"] == "waiting"

    # A later poll agrees with the callback and records nothing more.
    with tenant_context(tenant):
        failures = Event.objects.filter(type="customer.transfer_failed").count()
    poll_job(tenant.pk, job["id"])
    with tenant_context(tenant):
        assert Event.objects.filter(type="customer.transfer_failed").count() == failures == 1


def test_a_departed_members_customers_are_unassigned_until_inherited(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, corp, "bob", 2)
    _import(wecom_acme)
    control.simulate(corp, "resign", userid="bob")  # its callback never reaches Siyu here

    with tenant_context(wecom_acme.tenant):
        counts = unassigned_sync()
        assert StaffMember.objects.get(userid="bob").status == StaffStatus.LEFT
    assert counts == {"unassigned": 2, "staff_marked_left": 1, "relations_added": 0}
    client = login.token(wecom_acme["manager"])
    listed = client.get("/api/v1/transfers/unassigned").json()
    assert sorted(i["external_userid"] for i in listed["items"]) == sorted(exts)
    assert {i["handover"]["userid"] for i in listed["items"]} == {"bob"}

    job = _transfer(client, wecom_acme, "bob", "alice", customer_ids=_ids(wecom_acme, exts))
    assert job.status_code == 201, job.content
    assert job.json()["kind"] == "resigned"
    assert {t.resigned for t in sandbox.world.corps[corp].transfers} == {True}
    assert client.get("/api/v1/transfers/unassigned").json()["count"] == 0  # under way

    control.advance_clock(DAY + 1)
    polled = _post(client, f"/api/v1/transfers/{job.json()['id']}/poll").json()
    assert [i["status"] for i in polled["items"]] == ["accepted", "accepted"]
    assert _relation(wecom_acme, "alice", exts[0]).add_way == 202
    assert client.get("/api/v1/transfers/unassigned").json()["count"] == 0
    with tenant_context(wecom_acme.tenant):
        assert unassigned_sync()["unassigned"] == 0  # WeCom agrees


def test_per_customer_errors_fail_those_items_while_the_others_proceed(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, corp, "alice", 3)
    _import(wecom_acme)
    # Behind Siyu's back: one customer is already being moved (another tool), alice deleted
    # another in her phone and the callback was lost.
    with WeComClient.for_tenant(tenant) as wecom:
        wecom.transfer_customers(
            handover_userid="alice",
            takeover_userid="carol",
            external_userids=[exts[0]],
            resigned=False,
        )
    control.simulate(corp, "staff_delete", userid="alice", external_userid=exts[1])

    response = _transfer(
        login.token(wecom_acme["admin"]),
        wecom_acme,
        "alice",
        "bob",
        customer_ids=_ids(wecom_acme, exts),
    )

    assert response.status_code == 201, response.content
    items = {i["external_userid"]: i for i in response.json()["items"]}
    assert (items[exts[0]]["status"], items[exts[0]]["errcode"]) == ("failed", 40129)
    assert (items[exts[1]]["status"], items[exts[1]]["errcode"]) == ("failed", 40131)
    assert items[exts[0]]["errmsg"] == "该客户正在转接中"
    assert items[exts[2]]["status"] == "waiting"
    # Failed customers stay where they were, and may be chosen again.
    assert _relation(wecom_acme, "alice", exts[0]).status == RelationStatus.ACTIVE
    with tenant_context(tenant):
        failed = Event.objects.filter(type="customer.transfer_failed")
        assert sorted(e.payload["errcode"] for e in failed) == [40129, 40131]


def test_invalid_requests_are_refused_and_nothing_reaches_wecom(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    alices = _seed(control, corp, "alice", 2)
    carols = _seed(control, corp, "carol", 1)  # 市场部: outside the sales manager's scope
    _import(wecom_acme)
    manager = login.token(wecom_acme["manager"])
    mixed = _ids(wecom_acme, alices + carols)

    cases: list[tuple[Client, str, str, dict[str, Any], int, str]] = [
        (manager, "alice", "bob", {"customer_ids": mixed}, 404, "not_found"),
        (manager, "carol", "bob", {"customer_ids": mixed[2:]}, 404, "not_found"),
        (manager, "alice", "alice", {"customer_ids": mixed[:1]}, 400, "invalid_input"),
        (manager, "alice", "bob", {"customer_ids": mixed[2:]}, 404, "not_found"),
        (manager, "alice", "bob", {"customer_ids": []}, 400, "invalid_input"),
        (manager, "alice", "bob", {"customer_ids": mixed[:1], "x": 1}, 422, "invalid_request"),
        (
            login.token(wecom_acme["alice"]),
            "alice",
            "bob",
            {"customer_ids": mixed[:1]},
            403,
            "permission_denied",
        ),
        (
            login.token(wecom_acme["admin"]),
            "bob",
            "alice",
            {"customer_ids": mixed[:1]},
            400,
            "invalid_input",
        ),
    ]
    for client, handover, takeover, body, status, code in cases:
        response = _transfer(client, wecom_acme, handover, takeover, **body)
        assert (response.status_code, response.json()["code"]) == (status, code), (
            body,
            response.content,
        )
    assert (
        "customer_ids"
        in _transfer(manager, wecom_acme, "alice", "bob", customer_ids=mixed).json()["details"]
    )

    assert sandbox.world.corps[corp].transfers == []
    with tenant_context(wecom_acme.tenant):
        assert not TransferJob.objects.exists()
        assert not AuditEntry.objects.filter(action="customers.transfer").exists()


def test_more_than_a_hundred_customers_go_in_calls_of_a_hundred(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    tenant = wecom_acme.tenant
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, tenant.corp_id, "alice", 150)
    _import(wecom_acme)

    response = _transfer(
        login.token(wecom_acme["boss"]),
        wecom_acme,
        "alice",
        "bob",
        customer_ids=_ids(wecom_acme, exts),
    )

    assert response.status_code == 201, response.content
    assert [i["status"] for i in response.json()["items"]] == ["waiting"] * 150
    assert len(sandbox.world.corps[tenant.corp_id].transfers) == 150
    with tenant_context(tenant):
        calls = RateWindow.objects.filter(api="externalcontact/transfer_customer", window="minute")
        assert sum(w.count for w in calls) == 2


def test_group_chats_move_to_the_takeover_at_once(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    tenant = wecom_acme.tenant
    corp = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, corp, "alice", 2)
    chat = control.simulate(corp, "create_group", owner="alice", name="VIP 群", members=exts)
    _import(wecom_acme)

    response = _transfer(
        login.token(wecom_acme["manager"]), wecom_acme, "alice", "bob", chat_ids=[chat["chat_id"]]
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["chat_items"][0]["status"]) == ("done", ChatItemStatus.DONE)
    assert sandbox.world.corps[corp].group_chats[chat["chat_id"]].owner == "bob"
    with tenant_context(tenant):
        assert GroupChat.objects.get(chat_id=chat["chat_id"]).owner_userid == "bob"
    # Someone else's chat, or one that is not the handover's: refused before WeCom.
    again = _transfer(
        login.token(wecom_acme["manager"]), wecom_acme, "alice", "bob", chat_ids=[chat["chat_id"]]
    )
    assert again.status_code == 404


def test_the_completion_callback_settles_the_item_before_the_poll(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    """del_external_contact with Source=DELETE_BY_TRANSFER, through the real handler."""
    from siyu.wecom.callback.inbox import inbox_store
    from siyu.wecom.tests.builders import event_data, event_xml

    tenant = wecom_acme.tenant
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, tenant.corp_id, "alice", 1)
    _import(wecom_acme)
    job = _transfer(
        login.token(wecom_acme["admin"]),
        wecom_acme,
        "alice",
        "bob",
        customer_ids=_ids(wecom_acme, exts),
    ).json()
    at = int(sandbox.world.now()) + DAY
    fields = {"UserID": "alice", "ExternalUserID": exts[0], "Source": "DELETE_BY_TRANSFER"}
    common = {"event": "change_external_contact", "change_type": "del_external_contact"}
    item = inbox_store(
        tenant=tenant,
        message=event_xml(corp_id=tenant.corp_id, create_time=at, **common, **fields),
        data=event_data(create_time=at, **common, **fields),
    )
    assert item is not None
    assert inbox_process(inbox_id=item.pk) == "done"
    _run_deliveries(wecom_acme)

    with tenant_context(tenant):
        assert TransferItem.objects.get(job_id=job["id"]).status == ItemStatus.ACCEPTED
        history = list(
            Event.objects.filter(customer_id=_ids(wecom_acme, exts)[0])
            .order_by("pk")
            .values_list("type", flat=True)
        )
    assert history[-3:] == [
        "customer.transfer_requested",
        "customer.deleted_by_staff",
        "customer.transferred",
    ]


def test_console_transfer_from_picking_the_handover_to_the_job_record(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    from django.urls import reverse

    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, corp, "alice", 2)
    _import(wecom_acme)
    ids = _ids(wecom_acme, exts)
    console = login.session(wecom_acme["manager"])
    url = reverse("console:transfers_onjob")

    page = console.get(url, {"handover": wecom_acme["alice"].pk}).content.decode()
    assert all(f'value="{i}"' in page for i in ids)
    assert "Carol" not in page  # takeovers are limited to the manager's department

    bad = console.post(
        url, {"handover": wecom_acme["alice"].pk, "takeover": "", "customer_ids": ids}
    )
    assert bad.status_code == 302
    with tenant_context(wecom_acme.tenant):
        assert not TransferJob.objects.exists()
    done = console.post(
        url,
        {"handover": wecom_acme["alice"].pk, "takeover": wecom_acme["bob"].pk, "customer_ids": ids},
        follow=True,
    )
    assert done.redirect_chain[-1][0].startswith(reverse("console:transfer_jobs"))
    body = done.content.decode()
    assert body.count("等待接替") == 2
    assert len(sandbox.world.corps[corp].transfers) == 2


def test_a_third_onjob_transfer_within_90_days_is_refused_before_wecom(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    tenant = wecom_acme.tenant
    control = SandboxControl(sandbox.base_url)
    exts = _seed(control, tenant.corp_id, "alice", 1)
    _import(wecom_acme)
    client = login.token(wecom_acme["admin"])
    for handover, takeover in [("alice", "bob"), ("bob", "alice")]:
        job = _transfer(client, wecom_acme, handover, takeover, customer_ids=_ids(wecom_acme, exts))
        control.advance_clock(DAY + 1)
        poll_job(tenant.pk, job.json()["id"])

    third = _transfer(client, wecom_acme, "alice", "bob", customer_ids=_ids(wecom_acme, exts))

    assert third.status_code == 201, third.content
    item = third.json()["items"][0]
    assert (item["status"], item["errcode"]) == ("failed", 40128)
    assert third.json()["status"] == "done"
    with tenant_context(tenant):
        calls = RateWindow.objects.filter(api="externalcontact/transfer_customer", window="minute")
        assert sum(w.count for w in calls) == 2
    assert _relation(wecom_acme, "alice", exts[0]).status == RelationStatus.ACTIVE
