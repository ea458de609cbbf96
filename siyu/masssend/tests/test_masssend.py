"""Mass sends against the sandbox over HTTP: preview, fan-out, recovery, results, cancel."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from siyu.core.errors import InvalidInput
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers import services as customers
from siyu.customers.models import CustomerIdentity
from siyu.masssend import services
from siyu.masssend.models import (
    AudienceKind,
    Batch,
    BatchStatus,
    MassSend,
    MassSendKind,
    MassSendStatus,
    RecipientStatus,
)
from siyu.masssend.selectors import mass_send_counts, mass_send_progress
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.testing.stories import Company
from siyu.wecom.sync.services import reconcile


def seed(sandbox: Sandbox, company: Company, per_staff: dict[str, int]) -> dict[str, list[int]]:
    """Customers added in WeCom, imported by reconciliation: userid → customer ids."""
    corp = company.tenant.corp_id
    with SandboxControl(sandbox.base_url) as control:
        exts = {
            userid: [
                r["result"]["external_userid"]
                for r in control.batch(corp, [("add", {"userid": userid})] * n)
            ]
            for userid, n in per_staff.items()
        }
    run = reconcile(company.tenant)
    assert run.status == "done", run.error
    with tenant_context(company.tenant):
        of = dict(CustomerIdentity.objects.values_list("value", "customer_id"))
    return {userid: [of[e] for e in values] for userid, values in exts.items()}


def create(company: Company, ids: list[int], **kwargs: Any) -> MassSend:
    options: dict[str, Any] = {
        "kind": MassSendKind.CUSTOMERS,
        "name": "双十一预热",
        "audience_kind": AudienceKind.UPLOAD,
        "audience": {"customer_ids": ids},
        "text": "限时优惠，点击查看",
        **kwargs,
    }
    return services.mass_send_create(actor=company["ops"], **options)


def send_all(send: MassSend) -> list[Batch]:
    for batch_id in services.mass_send_dispatch(mass_send_id=send.pk):
        services.batch_send(batch_id=batch_id)
    return list(Batch.objects.filter(mass_send=send).order_by("pk"))


def confirm(sandbox: Sandbox, company: Company, batch: Batch) -> dict[str, Any]:
    assert batch.staff is not None
    with SandboxControl(sandbox.base_url) as control:
        return control.simulate(
            company.tenant.corp_id,
            "confirm_mass_send",
            msgid=batch.msgid,
            userid=batch.staff.userid,
        )


def wecom_targets(sandbox: Sandbox, company: Company) -> list[tuple[str, str]]:
    corp = sandbox.world.corps[company.tenant.corp_id]
    return sorted(
        (u, t) for s in corp.mass_sends.values() for u, ts in s.targets.items() for t in ts
    )


@pytest.fixture(autouse=True)
def _eager(settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False  # tests drive each step themselves


def test_preview_counts_receivers_and_says_why_others_are_left_out(
    wecom_acme: Company, sandbox: Sandbox, settings: Any
) -> None:
    settings.SIYU_MASS_SEND_RULE = "one_per_day"
    ids = seed(sandbox, wecom_acme, {"alice": 3, "bob": 2})
    with tenant_context(wecom_acme.tenant):
        first = create(wecom_acme, [ids["alice"][0]])
        [batch] = send_all(first)
        confirm(sandbox, wecom_acme, batch)
        assert services.mass_send_sync(mass_send_id=first.pk) == 1
        gone = ids["bob"][0]
        relation = wecom_acme["bob"].customer_relations.get(customer_id=gone)
        customers.relation_deleted(
            staff=wecom_acme["bob"],
            external_userid=relation.external_userid,
            at=timezone.now(),
            by="customer",
            source="wecom",
        )
        preview = services.mass_send_preview(
            actor=wecom_acme["ops"],
            kind=MassSendKind.CUSTOMERS,
            audience_kind=AudienceKind.UPLOAD,
            audience={"customer_ids": ids["alice"] + ids["bob"]},
        )
    assert (preview.matched, preview.receiving) == (5, 3)
    assert preview.excluded == {"cap": 1, "deleted": 1}
    assert {s.name: s.recipients for s in preview.staff} == {"Alice": 2, "Bob": 1}
    assert preview.batches == 2 and preview.cap == 1
    assert any("confirms the task" in note for note in preview.notes)


def test_a_send_creates_one_task_per_sender_and_follows_confirmations_and_delivery(
    wecom_acme: Company, sandbox: Sandbox
) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 3, "bob": 2})
    with tenant_context(wecom_acme.tenant):
        send = create(wecom_acme, ids["alice"] + ids["bob"])
        batches = send_all(send)
        assert [b.status for b in batches] == [BatchStatus.CREATED] * 2
        assert MassSend.objects.get(pk=send.pk).status == MassSendStatus.SENT
        alice = next(b for b in batches if b.staff == wecom_acme["alice"])
        assert confirm(sandbox, wecom_acme, alice)["sent"] == 3
        assert services.mass_send_sync(mass_send_id=send.pk) == 3
        assert services.mass_send_sync(mass_send_id=send.pk) == 0  # nothing twice
        progress = {p.userid: p for p in mass_send_progress(send=send)}
        assert (progress["alice"].state, progress["alice"].delivered) == ("confirmed", 3)
        assert (progress["bob"].state, progress["bob"].pending) == ("pending", 2)
        delivered = Event.objects.filter(type="masssend.delivered")
        assert set(delivered.values_list("customer_id", flat=True)) == set(ids["alice"])
        assert Event.objects.filter(type="masssend.sent").count() == 1
    assert len(wecom_targets(sandbox, wecom_acme)) == 5
    text = next(iter(sandbox.world.corps[wecom_acme.tenant.corp_id].mass_sends.values())).text
    assert text["content"].startswith("限时优惠，点击查看")
    assert services.marker_key(text["content"]) in {b.key for b in batches}


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("timeout_after_rate", "adopted"),  # WeCom created it, the answer was lost
        ("busy_rate", "resend"),  # WeCom refused it
    ],
)
def test_an_uncertain_call_is_reconciled_with_wecom_never_sent_twice(
    wecom_acme: Company, sandbox: Sandbox, settings: Any, fault: str, outcome: str
) -> None:
    settings.SIYU_WECOM_TIMEOUT_SECONDS = 1
    ids = seed(sandbox, wecom_acme, {"alice": 2})
    with SandboxControl(sandbox.base_url) as control:
        control.set_faults(
            **{fault: 1.0}, timeout_seconds=1.5, paths=["externalcontact/add_msg_template"]
        )
        with tenant_context(wecom_acme.tenant):
            send = create(wecom_acme, ids["alice"])
            [batch_id] = services.mass_send_dispatch(mass_send_id=send.pk)
            assert services.batch_send(batch_id=batch_id) == "uncertain"
            assert Batch.objects.get(pk=batch_id).status == BatchStatus.CALLING
            # Too early: the call might still be running.
            assert services.mass_send_recover() == {"adopted": 0, "resend": 0, "failed": 0}
            control.set_faults(**{fault: 0.0})
            later = timezone.now() + timedelta(
                seconds=settings.SIYU_MASS_SEND_RECONCILE_SECONDS + 1
            )
            assert services.mass_send_recover(now=later)[outcome] == 1
            if outcome == "resend":
                assert services.batch_send(batch_id=batch_id) == "created"
            batch = Batch.objects.get(pk=batch_id)
            assert batch.status == BatchStatus.CREATED
            assert services.batch_send(batch_id=batch_id) == "skipped"
    corp = sandbox.world.corps[wecom_acme.tenant.corp_id]
    assert list(corp.mass_sends) == [batch.msgid]
    assert len(wecom_targets(sandbox, wecom_acme)) == 2


def test_cancel_stops_batches_not_created_and_cancels_created_tasks(
    wecom_acme: Company, sandbox: Sandbox
) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 1, "bob": 1})
    with tenant_context(wecom_acme.tenant):
        send = create(wecom_acme, ids["alice"] + ids["bob"])
        first, second = services.mass_send_dispatch(mass_send_id=send.pk)
        assert services.batch_send(batch_id=first) == "created"
        services.mass_send_cancel(actor=wecom_acme["ops"], mass_send_id=send.pk)
        assert services.batch_send(batch_id=second) == "skipped"
        assert Batch.objects.get(pk=second).status == BatchStatus.CANCELLED
        assert Batch.objects.get(pk=first).remote_cancelled
        assert mass_send_counts(send=send) == {RecipientStatus.CANCELLED: 2}
    corp = sandbox.world.corps[wecom_acme.tenant.corp_id]
    assert [s.cancelled for s in corp.mass_sends.values()] == [True]


def test_bad_input_is_refused_and_nothing_is_stored(wecom_acme: Company, sandbox: Sandbox) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 1})
    with tenant_context(wecom_acme.tenant):
        with pytest.raises(InvalidInput, match="matches nobody"):
            create(
                wecom_acme,
                [],
                audience_kind=AudienceKind.EXPRESSION,
                audience={"expression": "stage:paid"},
            )
        with pytest.raises(InvalidInput, match="in the past"):
            create(wecom_acme, ids["alice"], scheduled_at=timezone.now() - timedelta(hours=1))
        with pytest.raises(InvalidInput, match="text is required"):
            create(wecom_acme, ids["alice"], text=" ")
        with pytest.raises(InvalidInput, match="attachment 1"):
            create(
                wecom_acme, ids["alice"], attachments=[{"msgtype": "link", "link": {"title": "x"}}]
            )
        with pytest.raises(InvalidInput, match="customer_ids"):
            create(wecom_acme, ["1"])  # type: ignore[list-item]
        assert not MassSend.objects.exists()


def test_a_scheduled_send_whose_audience_emptied_fails_instead_of_hanging(
    wecom_acme: Company, sandbox: Sandbox
) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 1})
    with tenant_context(wecom_acme.tenant):
        send = create(wecom_acme, ids["alice"], scheduled_at=timezone.now() + timedelta(hours=1))
        assert services.due_mass_sends() == []
        relation = wecom_acme["alice"].customer_relations.get()
        customers.relation_deleted(
            staff=wecom_acme["alice"],
            external_userid=relation.external_userid,
            at=timezone.now(),
            by="staff",
            source="wecom",
        )
        later = timezone.now() + timedelta(hours=2)
        assert services.due_mass_sends(now=later) == [send.pk]
        assert services.mass_send_dispatch(mass_send_id=send.pk, now=later) == []
        send.refresh_from_db()
        assert send.status == MassSendStatus.FAILED
        assert "nobody" in send.error


def test_an_uploaded_csv_is_checked_row_by_row(wecom_acme: Company, sandbox: Sandbox) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 2})
    with tenant_context(wecom_acme.tenant):
        ext = wecom_acme["alice"].customer_relations.order_by("-pk")[0].external_userid
        data = f"customer_id\n{ids['alice'][0]}\n{ext}\n999999\nwm_nobody\n".encode()
        result = services.audience_upload_parse(data=data)
    assert result.customer_ids == ids["alice"]
    assert result.errors == [
        {"row": 4, "value": "999999", "message": "no such customer"},
        {"row": 5, "value": "wm_nobody", "message": "no such customer"},
    ]


def test_marker_round_trip() -> None:
    key = "0123456789abcdef"
    assert services.marker_key("你好" + services.marker(key)) == key
    assert services.marker_key("no marker here") is None


def _json(client: Any, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_api_preview_create_detail_and_cancel(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 2})
    client = login.token(wecom_acme["ops"])
    audience = {
        "kind": "customers",
        "audience_kind": "upload",
        "audience": {"customer_ids": ids["alice"]},
    }
    preview = _json(client, "/api/v1/masssends/preview", audience)
    assert preview.status_code == 200, preview.content
    assert (preview.json()["receiving"], preview.json()["batches"]) == (2, 1)
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    created = _json(
        client,
        "/api/v1/masssends",
        {**audience, "name": "周末活动", "text": "周末见", "scheduled_at": later},
    )
    assert created.status_code == 201, created.content
    send_id = created.json()["id"]
    assert created.json()["status"] == "scheduled"
    past = _json(
        client,
        "/api/v1/masssends",
        {**audience, "name": "x", "text": "x", "scheduled_at": "2020-01-01T00:00:00+08:00"},
    )
    assert past.status_code == 400 and past.json()["code"] == "invalid_input"
    listed = client.get("/api/v1/masssends").json()
    assert [s["id"] for s in listed["items"]] == [send_id]
    cancelled = client.post(f"/api/v1/masssends/{send_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/masssends/{send_id}/cancel")
    assert again.status_code == 409
    upload = client.post(
        "/api/v1/masssends/audience/upload",
        {"file": SimpleUploadedFile("a.csv", f"{ids['alice'][0]}\nnobody\n".encode())},
    )
    assert upload.json() == {
        "customer_ids": [ids["alice"][0]],
        "errors": [{"row": 2, "value": "nobody", "message": "no such customer"}],
    }
    assert login.token(wecom_acme["alice"]).get("/api/v1/masssends").status_code == 403


def test_console_preview_then_create_then_live_progress(
    wecom_acme: Company, sandbox: Sandbox, login: Any
) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 2, "bob": 1})
    client = login.session(wecom_acme["ops"])
    form = {
        "kind": "customers",
        "name": "新品上市",
        "audience_kind": "upload",
        "customer_ids": ",".join(str(i) for i in ids["alice"] + ids["bob"]),
        "text": "新品上市",
    }
    page = client.post(reverse("console:masssend_new"), {**form, "op": "preview"})
    assert page.status_code == 200
    preview = page.context["preview"]
    assert (preview.matched, preview.receiving) == (3, 3)
    empty = client.post(
        reverse("console:masssend_new"), {**form, "customer_ids": "", "op": "preview"}
    )
    assert "no customers" in empty.context["error"]
    done = client.post(reverse("console:masssend_new"), {**form, "op": "create"})
    assert done.status_code == 302
    with tenant_context(wecom_acme.tenant):
        send = MassSend.objects.get()
        for batch_id in services.mass_send_dispatch(mass_send_id=send.pk):
            services.batch_send(batch_id=batch_id)
    detail = client.get(done["Location"])
    assert detail.status_code == 200
    assert b'hx-trigger="every 2s"' in detail.content
    progress = client.get(reverse("console:masssend_progress", args=[send.pk]))
    assert [p.userid for p in progress.context["progress"]] == ["alice", "bob"]
    assert client.get(reverse("console:masssends")).status_code == 200
    cancel = client.post(done["Location"], {"op": "cancel"})
    assert cancel.status_code == 302
    with tenant_context(wecom_acme.tenant):
        assert MassSend.objects.get().status == MassSendStatus.CANCELLED


def test_group_chats_and_moments_fan_out_by_owner(wecom_acme: Company, sandbox: Sandbox) -> None:
    corp = wecom_acme.tenant.corp_id
    with SandboxControl(sandbox.base_url) as control:
        for owner in ("alice", "alice", "bob"):
            control.simulate(corp, "create_group", owner=owner)
    ids = seed(sandbox, wecom_acme, {"alice": 1, "carol": 1})
    with tenant_context(wecom_acme.tenant):
        groups = create(wecom_acme, [], kind=MassSendKind.GROUPS, audience={"customer_ids": [1]})
        batches = send_all(groups)
        assert {(b.staff.userid, b.size) for b in batches if b.staff} == {("alice", 2), ("bob", 1)}
        moments = create(wecom_acme, ids["alice"] + ids["carol"], kind=MassSendKind.MOMENTS)
        [moment] = send_all(moments)
        assert moment.status == BatchStatus.CREATED and moment.msgid
    world = sandbox.world.corps[corp]
    assert sorted(len(s.targets[s.creator]) for s in world.mass_sends.values()) == [1, 2]
    [job] = world.moment_jobs.values()
    senders = job["body"]["visible_range"]["sender_list"]["user_list"]
    assert sorted(senders) == ["alice", "carol"]


def test_reminders_stop_at_wecoms_cap(wecom_acme: Company, sandbox: Sandbox) -> None:
    ids = seed(sandbox, wecom_acme, {"alice": 1})
    with tenant_context(wecom_acme.tenant):
        send = create(wecom_acme, ids["alice"])
        send_all(send)
        sent = [
            services.mass_send_remind(actor=wecom_acme["ops"], mass_send_id=send.pk)
            for _ in range(4)
        ]
    assert sent == [1, 1, 1, 0]
    [record] = sandbox.world.corps[wecom_acme.tenant.corp_id].mass_sends.values()
    assert len(record.reminders) == 3


def test_a_content_item_goes_out_as_each_senders_tracked_link(
    wecom_acme: Company, sandbox: Sandbox
) -> None:
    from siyu.content.services import item_create

    ids = seed(sandbox, wecom_acme, {"alice": 1, "bob": 1})
    with tenant_context(wecom_acme.tenant):
        item = item_create(
            actor=wecom_acme["ops"], kind="article", title="白皮书", body="<p>第一章</p>"
        )
        send_all(create(wecom_acme, ids["alice"] + ids["bob"], content_item_id=item.pk))
    links = {
        s.creator or next(iter(s.targets)): s.attachments[-1]["link"]
        for s in sandbox.world.corps[wecom_acme.tenant.corp_id].mass_sends.values()
    }
    assert sorted(links) == ["alice", "bob"]
    assert {link["title"] for link in links.values()} == {"白皮书"}
    assert links["alice"]["url"] != links["bob"]["url"]  # one tracked link per sender
