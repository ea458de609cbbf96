"""Tasks, alerts and scripts at the service level: idempotency, re-routing, rate limits."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run, event_record
from siyu.customers.models import Customer
from siyu.customers.services import customer_ensure, relation_added
from siyu.sandbox.httpd import Sandbox
from siyu.testing.stories import Company
from siyu.transfers.models import ItemStatus, TransferItem, TransferJob, TransferKind
from siyu.workspace import tasks
from siyu.workspace.models import AlertStatus, StaffAlert, StaffTask, TaskStatus
from siyu.workspace.services import (
    alert_send,
    script_save,
    script_used,
    task_create,
    task_done,
)


def _customer(staff: StaffMember, ext: str, *, days_ago: int = 0) -> Customer:
    customer = customer_ensure(external_userid=ext)
    relation_added(
        staff=staff,
        external_userid=ext,
        at=timezone.now() - timedelta(days=days_ago),
        source="sandbox",
    )
    return customer


def _run_deliveries() -> None:
    """Run the workspace's subscribers, as the worker would (other lanes' are theirs to test)."""
    pending = EventDelivery.objects.filter(
        status=DeliveryStatus.PENDING, subscriber__startswith="workspace."
    ).order_by("pk")
    for pk in list(pending.values_list("pk", flat=True)):
        assert event_delivery_run(delivery_id=pk) in {"done", "skipped"}


def _leave(member: StaffMember) -> None:
    member.status = StaffStatus.LEFT
    member.left_at = timezone.now()
    member.save(update_fields=["status", "left_at"])


def test_task_create_is_idempotent_on_dedupe_key(in_acme: Company) -> None:
    alice = in_acme["alice"]
    first = task_create(staff=alice, title="回访", kind="sop", dedupe_key="sop:1:step:1")
    again = task_create(staff=alice, title="另一个标题", kind="sop", dedupe_key="sop:1:step:1")
    assert again.pk == first.pk and again.title == "回访"
    assert StaffTask.objects.count() == 1
    # Without a key every call is a new task.
    task_create(staff=alice, title="回访", kind="sop")
    assert StaffTask.objects.count() == 2
    with pytest.raises(InvalidInput):
        task_create(staff=alice, title="  ", kind="sop")
    with pytest.raises(InvalidInput):
        task_create(staff=alice, title="x", kind="sop", due_at=timezone.now().replace(tzinfo=None))
    assert StaffTask.objects.count() == 2


def test_task_for_a_departed_member_goes_to_the_new_owner_or_is_cancelled(
    in_acme: Company,
) -> None:
    alice, bob = in_acme["alice"], in_acme["bob"]
    shared = _customer(alice, "wm-shared")
    _customer(bob, "wm-shared")
    alone = _customer(alice, "wm-alone")
    _leave(alice)

    moved = task_create(staff=alice, title="送礼", kind="fission", customer=shared)
    assert (moved.staff, moved.rerouted_from, moved.status) == (bob, alice, TaskStatus.OPEN)
    dropped = task_create(staff=alice, title="回访", kind="sop", customer=alone)
    assert dropped.status == TaskStatus.CANCELLED and dropped.cancel_reason
    assert dropped.staff == alice


def test_transfer_moves_open_tasks_about_the_customer(in_acme: Company) -> None:
    alice, bob = in_acme["alice"], in_acme["bob"]
    customer = _customer(alice, "wm-moving")
    other = _customer(alice, "wm-staying")
    open_task = task_create(staff=alice, title="回访", kind="sop", customer=customer)
    done = task_create(staff=alice, title="已完成", kind="sop", customer=customer)
    task_done(actor=alice, task_id=done.pk)
    stays = task_create(staff=alice, title="别的客户", kind="sop", customer=other)

    moved = {"from_userid": "alice", "to_userid": "bob", "item_id": 9}
    event_record(
        type="customer.transferred", source="system", customer_id=customer.pk, payload=moved
    )
    _run_deliveries()

    open_task.refresh_from_db()
    assert (open_task.staff, open_task.rerouted_from) == (bob, alice)
    # The new owner is asked to introduce themselves, once per transferred customer.
    greet = StaffTask.objects.get(kind="transfer")
    assert (greet.staff, greet.customer, greet.dedupe_key) == (bob, customer, "transfer:9")
    assert "Bob" in greet.body
    assert StaffTask.objects.get(pk=done.pk).staff == alice  # history stays where it was done
    assert StaffTask.objects.get(pk=stays.pk).staff == alice


def test_departed_members_tasks_are_settled_never_stuck(in_acme: Company) -> None:
    alice, bob = in_acme["alice"], in_acme["bob"]
    inherited = _customer(alice, "wm-inherited")
    waiting = _customer(alice, "wm-waiting")
    orphan = _customer(alice, "wm-orphan")
    t_inherited = task_create(staff=alice, title="a", kind="sop", customer=inherited)
    t_waiting = task_create(staff=alice, title="b", kind="sop", customer=waiting)
    t_orphan = task_create(staff=alice, title="c", kind="sop", customer=orphan)
    t_plain = task_create(staff=alice, title="d", kind="churn")
    _leave(alice)
    _customer(bob, "wm-inherited")  # bob already took this one over
    job = TransferJob.objects.create(kind=TransferKind.RESIGNED, handover=alice, takeover=bob)
    TransferItem.objects.create(
        job=job, customer=waiting, external_userid="wm-waiting", status=ItemStatus.WAITING
    )

    assert tasks.settle_departed() == 3
    rows = {t.pk: t for t in StaffTask.objects.all()}
    assert (rows[t_inherited.pk].staff, rows[t_inherited.pk].rerouted_from) == (bob, alice)
    assert rows[t_waiting.pk].status == TaskStatus.OPEN  # the transfer will move it
    assert rows[t_orphan.pk].status == TaskStatus.CANCELLED
    assert rows[t_plain.pk].status == TaskStatus.CANCELLED and rows[t_plain.pk].cancel_reason
    assert tasks.settle_departed() == 0


def test_task_done_once_by_its_owner_with_an_event(in_acme: Company) -> None:
    alice, bob = in_acme["alice"], in_acme["bob"]
    customer = _customer(alice, "wm-done")
    task = task_create(staff=alice, title="回访", kind="sop", customer=customer)
    with pytest.raises(NotFound):
        task_done(actor=bob, task_id=task.pk)
    assert task_done(actor=alice, task_id=task.pk).status == TaskStatus.DONE
    task_done(actor=alice, task_id=task.pk)
    events = Event.objects.filter(type="task.done")
    assert [(e.customer_id, e.payload) for e in events] == [
        (customer.pk, {"task_id": task.pk, "kind": "sop", "staff_id": alice.pk})
    ]
    cancelled = task_create(staff=alice, title="x", kind="sop")
    StaffTask.objects.filter(pk=cancelled.pk).update(status=TaskStatus.CANCELLED)
    with pytest.raises(Conflict):
        task_done(actor=alice, task_id=cancelled.pk)


@override_settings(SIYU_ALERT_CUSTOMER_INTERVAL_SECONDS=600, SIYU_ALERT_STAFF_PER_HOUR=3)
def test_alerts_are_deduplicated_and_rate_limited(in_acme: Company) -> None:
    alice = in_acme["alice"]
    busy = _customer(alice, "wm-busy")
    first = alert_send(
        staff=alice, kind="content.read", text="读了", dedupe_key="r1", customer=busy
    )
    assert first is not None
    # Same key: dropped. Same customer and kind within the interval: dropped.
    assert alert_send(staff=alice, kind="content.read", text="读了", dedupe_key="r1") is None
    assert (
        alert_send(staff=alice, kind="content.read", text="又读", dedupe_key="r2", customer=busy)
        is None
    )
    # A payment is not hidden behind the read.
    assert alert_send(staff=alice, kind="order.paid", text="付款", dedupe_key="p1", customer=busy)
    # After the interval the customer may alert again.
    StaffAlert.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert alert_send(staff=alice, kind="content.read", text="读", dedupe_key="r3", customer=busy)
    # The member's hourly cap (3: two in this hour + this one) holds for every customer.
    other = _customer(alice, "wm-other")
    assert alert_send(staff=alice, kind="content.read", text="x", dedupe_key="o1", customer=other)
    assert (
        alert_send(staff=alice, kind="order.paid", text="x", dedupe_key="o2", customer=other)
        is None
    )
    assert StaffAlert.objects.count() == 4
    # A member who left is never alerted.
    _leave(in_acme["bob"])
    assert alert_send(staff=in_acme["bob"], kind="x", text="x", dedupe_key="b1") is None


def test_alert_is_sent_as_an_app_message_after_commit(
    wecom_acme: Company, sandbox: Sandbox, django_capture_on_commit_callbacks: object
) -> None:
    from siyu.core.tenancy import tenant_context

    corp = sandbox.world.corps[wecom_acme.tenant.corp_id]
    with tenant_context(wecom_acme.tenant):
        with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[operator]
            alert = alert_send(staff=wecom_acme["alice"], kind="x", text="客户来了", dedupe_key="k")
        assert alert is not None and len(callbacks) == 1
        # A job lost with the broker is found again by the sweep.
        assert tasks.sweep_alerts(grace_seconds=0) == 1
        # What the queued job runs:
        assert tasks.deliver_alert(wecom_acme.tenant.pk, alert.pk) == "sent"
        assert tasks.deliver_alert(wecom_acme.tenant.pk, alert.pk) == "skipped"
        alert.refresh_from_db()
        assert alert.status == AlertStatus.SENT and alert.sent_at is not None
    sent = [(m["touser"], m["text"]["content"]) for m in corp.app_messages]
    assert sent == [("alice", "客户来了")]


def test_customer_moments_alert_the_member_once(in_acme: Company) -> None:
    alice = in_acme["alice"]
    customer = _customer(alice, "wm-reader")
    customer.name = "小王"
    customer.save(update_fields=["name"])
    payload = {
        "item_id": 7,
        "title": "春季新品",
        "staff_id": alice.pk,
        "seconds": 42,
        "visit_id": 3,
    }
    event_record(type="content.read", source="h5", customer_id=customer.pk, payload=payload)
    # The same visit reported twice (a sweep racing the final beacon) is one alert.
    event_record(type="content.read", source="h5", customer_id=customer.pk, payload=payload)
    # Opening alone waits for the read; an unknown event type is simply not subscribed.
    event_record(
        type="content.opened",
        source="h5",
        customer_id=customer.pk,
        payload={"item_id": 7, "title": "春季新品", "staff_id": alice.pk, "link_id": 1},
    )
    _run_deliveries()
    assert list(StaffAlert.objects.values_list("staff__userid", "kind", "text")) == [
        ("alice", "content.read", "客户 小王 打开了《春季新品》，阅读 42 秒")
    ]


def test_a_customer_back_after_silence_is_an_alert(in_acme: Company) -> None:
    alice = in_acme["alice"]
    customer = _customer(alice, "wm-silent", days_ago=30)
    assert Event.objects.filter(customer_id=customer.pk, type="customer.added").exists()
    Event.objects.filter(customer_id=customer.pk).update(
        occurred_at=timezone.now() - timedelta(days=30)
    )
    event_record(
        type="order.paid",
        source="system",
        customer_id=customer.pk,
        payload={"order_id": 5, "amount_fen": 12900, "staff_id": alice.pk, "paid_orders": 1},
    )
    # The next moment is not a comeback any more.
    event_record(
        type="shop.product_viewed",
        source="h5",
        customer_id=customer.pk,
        payload={"product_id": 3, "name": "礼盒", "staff_id": alice.pk},
    )
    _run_deliveries()
    texts = dict(StaffAlert.objects.values_list("kind", "text"))
    assert texts == {
        "came_back": f"【沉默 30 天后回来】客户 {customer} 已付款 ¥129.00（第 1 单）",
        "shop.product_viewed": f"客户 {customer} 正在浏览商品《礼盒》",
    }


def test_scripts_are_managed_by_operations_and_counted_when_used(in_acme: Company) -> None:
    from siyu.workspace.services import category_save

    ops, alice = in_acme["ops"], in_acme["alice"]
    with pytest.raises(PermissionDenied):
        category_save(actor=alice, name="开场白")
    category = category_save(actor=ops, name="开场白")
    with pytest.raises(Conflict):
        category_save(actor=ops, name="开场白")
    with pytest.raises(InvalidInput):
        script_save(
            actor=ops,
            category_id=category.pk,
            title="问候",
            text="您好",
            attachments=[{"kind": "image", "url": "javascript:alert(1)"}],
        )
    script = script_save(actor=ops, category_id=category.pk, title="问候", text="您好～")
    assert script_used(actor=alice, script_id=script.pk).usage_count == 1
    assert script_used(actor=alice, script_id=script.pk).usage_count == 2
