"""The SOP engine: event enrolment, delays, branches, once-per-step, goal exit, funnel."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from siyu.core.services import event_record
from siyu.customers.lifecycle import stage_set
from siyu.sop import engine, selectors
from siyu.sop.models import Enrollment, EnrollmentStatus, Sop, StepOutcome, StepRun
from siyu.sop.tests.conftest import add_customer, at, drain, make_sop
from siyu.tags.models import CustomerTag, Tag, TagSource
from siyu.tags.services import tags_apply
from siyu.testing.stories import Company
from siyu.workspace.models import StaffAlert, StaffTask


def test_a_code_add_enrols_only_matching_customers_once(in_acme: Company) -> None:
    sop = make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": "customer.added", "conditions": {"state": "spring"}},
    )
    spring = add_customer(in_acme, "wm-1", state="spring")
    add_customer(in_acme, "wm-2", state="autumn")
    assert drain() == ["done", "done"]
    enrollment = Enrollment.objects.get(sop=sop)
    assert enrollment.customer_id == spring.pk
    assert enrollment.status == EnrollmentStatus.ACTIVE
    # The same customer added again (another code, same state) is not enrolled twice: "once".
    add_customer(in_acme, "wm-1", staff="bob", state="spring")
    drain()
    assert Enrollment.objects.filter(sop=sop).count() == 1


def test_tag_applied_and_stage_changed_enrol(in_acme: Company, vip: Tag) -> None:
    by_tag = make_sop(
        in_acme,
        name="VIP 关怀",
        trigger_kind="event",
        trigger={"event_type": "customer.tags_changed", "conditions": {"added_ids": vip.pk}},
    )
    by_stage = make_sop(
        in_acme,
        name="意向跟进",
        trigger_kind="event",
        trigger={"event_type": "customer.stage_changed", "conditions": {"to": "intent"}},
    )
    customer = add_customer(in_acme, "wm-1")
    with transaction.atomic():
        tags_apply(customer, [vip.pk], source=TagSource.MANUAL)
        stage_set(customer=customer, stage="intent", source="console")
    drain()
    assert Enrollment.objects.filter(sop=by_tag, customer=customer).count() == 1
    assert Enrollment.objects.filter(sop=by_stage, customer=customer).count() == 1


@pytest.mark.parametrize(
    ("event_type", "payload", "conditions"),
    [
        ("content.opened", {"item_id": 5, "title": "手册"}, {"item_id": 5}),
        ("order.paid", {"order_id": 9, "amount_fen": 9900, "paid_orders": 1}, {"paid_orders": 1}),
    ],
)
def test_link_opened_and_order_paid_enrol(
    in_acme: Company, event_type: str, payload: dict[str, Any], conditions: dict[str, Any]
) -> None:
    sop = make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": event_type, "conditions": conditions},
    )
    customer = add_customer(in_acme, "wm-1")
    other = add_customer(in_acme, "wm-2")
    with transaction.atomic():
        event_record(type=event_type, source="h5", customer_id=customer.pk, payload=payload)
        miss = {key: 0 for key in conditions}
        event_record(type=event_type, source="h5", customer_id=other.pk, payload=miss)
    drain()
    assert list(Enrollment.objects.values_list("sop", "customer")) == [(sop.pk, customer.pk)]


def test_paused_sops_enrol_nobody_and_run_nothing(in_acme: Company) -> None:
    from siyu.sop.services import sop_set_paused

    sop = make_sop(in_acme, trigger_kind="event", trigger={"event_type": "customer.added"})
    add_customer(in_acme, "wm-1")
    drain()
    sop_set_paused(actor=in_acme["ops"], sop_id=sop.pk, paused=True)
    add_customer(in_acme, "wm-2")
    assert drain() == []  # no delivery at all: no running SOP watches the event
    assert engine.sop_dispatch_batch() == 0
    sop_set_paused(actor=in_acme["ops"], sop_id=sop.pk, paused=False)
    assert engine.sop_dispatch_batch() == 1  # the overdue step runs on resume


def _three_steps(in_acme: Company, **extra: Any) -> Sop:
    return make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": "customer.added"},
        steps=[
            {"actions": [{"type": "task", "config": {"title": "欢迎", "body": "你好"}}]},
            {
                "delay_minutes": 60,
                "condition": 'tag:"VIP"',
                "else_action": "goto",
                "else_goto": 3,
                "actions": [{"type": "notify", "config": {"text": "VIP 客户，请跟进"}}],
            },
            {
                "delay_minutes": 24 * 60,
                "actions": [{"type": "stage", "config": {"stage": "intent"}}],
            },
        ],
        **extra,
    )


def test_steps_wait_their_delay_and_branch_on_the_condition(in_acme: Company, vip: Tag) -> None:
    sop = _three_steps(in_acme)
    plain = add_customer(in_acme, "wm-1")
    vip_customer = add_customer(in_acme, "wm-2")
    with transaction.atomic():
        tags_apply(vip_customer, [vip.pk], source=TagSource.MANUAL)
    drain()
    assert engine.sop_dispatch_batch() == 2  # step 1 for both, at once
    task = StaffTask.objects.get(customer=plain)
    assert (task.staff, task.kind, task.body) == (in_acme["alice"], "sop", "你好")
    enrollment = Enrollment.objects.get(sop=sop, customer=plain)
    assert task.dedupe_key == f"sop:{enrollment.pk}:{sop.steps.get(order=1).pk}"
    assert engine.sop_dispatch_batch(now=at(minutes=59)) == 0  # step 2 waits an hour
    assert engine.sop_dispatch_batch(now=at(minutes=61)) == 2
    runs = dict(
        StepRun.objects.filter(step__order=2).values_list("enrollment__customer_id", "outcome")
    )
    assert runs == {plain.pk: StepOutcome.BRANCHED, vip_customer.pk: StepOutcome.DONE}
    assert StaffAlert.objects.filter(customer=vip_customer).count() == 1
    assert not StaffAlert.objects.filter(customer=plain).exists()
    # Step 3 is due a day after step 2 ran.
    assert engine.sop_dispatch_batch(now=at(days=1)) == 0
    assert engine.sop_dispatch_batch(now=at(days=1, minutes=62)) == 2
    plain.refresh_from_db()
    assert plain.stage == "intent"
    assert set(Enrollment.objects.values_list("status", flat=True)) == {"completed"}


def test_each_step_runs_once_under_duplicate_dispatch(in_acme: Company) -> None:
    sop = make_sop(in_acme, trigger_kind="event", trigger={"event_type": "customer.added"})
    add_customer(in_acme, "wm-1")
    drain()
    # Two dispatchers read the same due row before either ran it.
    first = Enrollment.objects.get(sop=sop)
    second = Enrollment.objects.get(sop=sop)
    plan = engine._plan(sop)
    with transaction.atomic():
        assert engine.enrollment_step_run(enrollment=first, plan=plan, now=at()) == "done"
    with transaction.atomic():
        assert engine.enrollment_step_run(enrollment=second, plan=plan, now=at()) == "duplicate"
    assert StaffTask.objects.count() == 1
    assert StepRun.objects.count() == 1
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED
    assert engine.sop_dispatch_batch() == 0  # and a third finds nothing due


def test_a_failing_step_retries_then_fails_never_stuck(in_acme: Company, vip: Tag) -> None:
    sop = make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": "customer.added"},
        steps=[{"actions": [{"type": "tag_add", "config": {"tag_ids": [vip.pk]}}]}],
    )
    add_customer(in_acme, "wm-1")
    drain()
    vip.delete()  # the tag vanished after the SOP was written: the action raises NotFound
    when = at()
    for attempt in range(1, engine.MAX_ATTEMPTS + 1):
        assert engine.sop_dispatch_batch(now=when) == 1
        enrollment = Enrollment.objects.get(sop=sop)
        assert enrollment.attempts == attempt
        when = (enrollment.next_due_at or when) + timedelta(seconds=1)
    assert enrollment.status == EnrollmentStatus.FAILED
    assert "NotFound" in enrollment.last_error
    assert not StepRun.objects.exists()
    assert engine.sop_dispatch_batch(now=at(days=30)) == 0


def test_the_goal_event_exits_and_counts_as_converted(in_acme: Company, vip: Tag) -> None:
    sop = _three_steps(in_acme, goal_event="order.paid")
    buyer = add_customer(in_acme, "wm-1")
    add_customer(in_acme, "wm-2")
    add_customer(in_acme, "wm-3")
    drain()
    engine.sop_dispatch_batch()
    with transaction.atomic():
        event_record(type="order.paid", source="system", customer_id=buyer.pk, payload={})
    drain()
    enrollment = Enrollment.objects.get(customer=buyer)
    assert (enrollment.status, enrollment.converted) == (EnrollmentStatus.EXITED, True)
    # An exited enrolment runs no further step.
    engine.sop_dispatch_batch(now=at(days=3))
    engine.sop_dispatch_batch(now=at(days=5))
    assert not StepRun.objects.filter(enrollment=enrollment, step__order__gt=1).exists()
    funnel = selectors.sop_funnel(sop=sop)
    assert (funnel["enrolled"], funnel["converted"], funnel["completed"]) == (3, 1, 2)
    assert [s["reached"] for s in funnel["steps"]] == [3, 2, 2]
    assert [s["done"] for s in funnel["steps"]] == [3, 0, 2]  # nobody is VIP: step 2 branched
    assert funnel["conversion_rate"] == pytest.approx(33.3)


def test_tag_actions_and_webhooks(in_acme: Company, vip: Tag) -> None:
    from siyu.core.models import Event

    make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": "customer.added"},
        steps=[
            {
                "actions": [
                    {"type": "tag_add", "config": {"tag_ids": [vip.pk]}},
                    {"type": "webhook", "config": {"data": {"campaign": "spring"}}},
                ]
            },
            {"actions": [{"type": "tag_remove", "config": {"tag_ids": [vip.pk]}}]},
        ],
    )
    customer = add_customer(in_acme, "wm-1")
    drain()
    engine.sop_dispatch_batch()
    assert CustomerTag.objects.filter(customer=customer, tag=vip).exists()
    hook = Event.objects.get(type="sop.webhook")
    assert hook.payload["data"] == {"campaign": "spring"}
    assert hook.customer_id == customer.pk
    engine.sop_dispatch_batch()
    assert not CustomerTag.objects.filter(customer=customer, tag=vip).exists()


def test_re_entry_after_completion_waits_the_interval(in_acme: Company) -> None:
    sop = make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": "customer.updated"},
        reentry="after_completion",
        reentry_interval_hours=24,
    )
    customer = add_customer(in_acme, "wm-1")

    def touch() -> None:
        with transaction.atomic():
            event_record(type="customer.updated", source="system", customer_id=customer.pk)
        drain()

    touch()
    touch()  # still active: not enrolled again
    assert Enrollment.objects.filter(sop=sop).count() == 1
    engine.sop_dispatch_batch()
    touch()  # completed, but within 24 h
    assert Enrollment.objects.filter(sop=sop).count() == 1
    Enrollment.objects.update(enrolled_at=timezone.now() - timedelta(hours=25))
    touch()
    assert Enrollment.objects.filter(sop=sop).count() == 2


def test_mass_send_and_content_reach_the_customer_through_their_owner(in_acme: Company) -> None:
    from siyu.content.models import ContentItem
    from siyu.masssend.models import MassSend

    item = ContentItem.objects.create(title="春季新品手册", kind="article", body="<p>x</p>")
    sop = make_sop(
        in_acme,
        trigger_kind="event",
        trigger={"event_type": "customer.added"},
        steps=[
            {
                "actions": [
                    {
                        "type": "task",
                        "config": {"title": "发手册", "body": "请查收", "content_item_id": item.pk},
                    }
                ]
            },
            {
                "actions": [
                    {"type": "masssend", "config": {"title": "春季群发", "body": "新品上市"}}
                ]
            },
        ],
    )
    customer = add_customer(in_acme, "wm-1")
    drain()
    engine.sop_dispatch_batch()
    task = StaffTask.objects.get()
    assert task.body.startswith("请查收\nhttp")  # the tracked link for this customer
    engine.sop_dispatch_batch()
    send = MassSend.objects.get()
    assert (send.kind, send.audience, send.text) == (
        "customers",
        {"customer_ids": [customer.pk]},
        "新品上市",
    )
    assert send.created_by == sop.created_by
    run = StepRun.objects.get(step__order=2)
    assert run.detail == {"0:masssend": f"masssend:{send.pk}"}
