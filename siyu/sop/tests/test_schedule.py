"""Time triggers: days since added, silence, a date, a weekly cycle — incremental, by cursor."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.groupchats.models import GroupChat
from siyu.sop import engine
from siyu.sop.models import Enrollment, Sop
from siyu.sop.services import weekly_cycle
from siyu.sop.tests.conftest import add_customer, at, make_sop
from siyu.tags.models import Tag
from siyu.testing.stories import Company
from siyu.workspace.models import StaffTask


def _enrolled(sop: Sop) -> set[int]:
    return set(Enrollment.objects.filter(sop=sop).values_list("customer_id", flat=True))


def test_days_since_added_enrols_each_customer_when_their_day_comes(in_acme: Company) -> None:
    sop = make_sop(in_acme, trigger_kind="added_days", trigger={"days": 3})
    before = add_customer(in_acme, "wm-old", at=at(days=-5))  # 3rd day before activation
    day_one = add_customer(in_acme, "wm-1", at=at(days=-2))
    today = add_customer(in_acme, "wm-2")
    assert engine.sop_schedule_tick() == 0  # nobody's third day has come
    assert engine.sop_schedule_tick(now=at(days=1, minutes=1)) == 1
    assert _enrolled(sop) == {day_one.pk}
    sop.refresh_from_db()
    mark = (sop.cursor_at, sop.cursor_id)
    assert engine.sop_schedule_tick(now=at(days=1, minutes=2)) == 0
    sop.refresh_from_db()
    assert (sop.cursor_at, sop.cursor_id) == mark  # nothing new: the high-water mark stays
    assert engine.sop_schedule_tick(now=at(days=3, minutes=1)) == 1
    assert _enrolled(sop) == {day_one.pk, today.pk}
    assert before.pk not in _enrolled(sop)


def test_the_scheduler_works_in_batches_from_its_cursor(in_acme: Company) -> None:
    sop = make_sop(in_acme, trigger_kind="added_days", trigger={"days": 1})
    for i in range(3):
        add_customer(in_acme, f"wm-{i}", at=at(minutes=i))
    later = at(days=1, minutes=10)
    assert [engine.sop_schedule_tick(now=later, batch=2) for _ in range(3)] == [2, 1, 0]
    assert Enrollment.objects.filter(sop=sop).count() == 3


def _history(customer_id: int, when: datetime) -> None:
    """Pretend the customer's events happened (and were recorded) at ``when``."""
    Event.objects.filter(customer_id=customer_id).update(occurred_at=when, recorded_at=when)


def test_silence_enrols_customers_with_no_event_for_n_days(in_acme: Company) -> None:
    quiet = add_customer(in_acme, "wm-quiet")
    busy = add_customer(in_acme, "wm-busy")
    _history(quiet.pk, at(days=-10))
    _history(busy.pk, at(days=-10))
    with transaction.atomic():  # busy spoke two days ago
        event = event_record(type="customer.updated", source="wecom", customer_id=busy.pk)
    Event.objects.filter(pk=event.pk).update(occurred_at=at(days=-2), recorded_at=at(days=-2))
    sop = make_sop(in_acme, trigger_kind="silence", trigger={"days": 7})
    assert engine.sop_schedule_tick() == 0  # silence began before activation: not counted
    # The quiet customer's last event was before the start mark; busy falls silent in 5 days.
    assert engine.sop_schedule_tick(now=at(days=4)) == 0
    assert engine.sop_schedule_tick(now=at(days=5, minutes=1)) == 1
    assert _enrolled(sop) == {busy.pk}
    # Its own bookkeeping (sop.enrolled) is not activity: no second enrolment, no reset.
    assert engine.sop_schedule_tick(now=at(days=20)) == 0


def test_a_date_trigger_enrols_the_audience_once_when_it_comes(in_acme: Company, vip: Tag) -> None:
    from siyu.tags.models import TagSource
    from siyu.tags.services import tags_apply

    members = [add_customer(in_acme, f"wm-{i}") for i in range(3)]
    with transaction.atomic():
        for customer in members[:2]:
            tags_apply(customer, [vip.pk], source=TagSource.MANUAL)
    sop = make_sop(
        in_acme,
        trigger_kind="date",
        trigger={"at": at(days=1).isoformat()},
        audience='tag:"VIP"',
    )
    assert engine.sop_schedule_tick() == 0  # not yet
    assert engine.sop_schedule_tick(now=at(days=1, minutes=1), batch=1) == 1
    assert engine.sop_schedule_tick(now=at(days=1, minutes=2), batch=1) == 1
    assert engine.sop_schedule_tick(now=at(days=1, minutes=3), batch=1) == 0
    assert engine.sop_schedule_tick(now=at(days=9)) == 0  # done for good
    assert _enrolled(sop) == {members[0].pk, members[1].pk}


def test_a_weekly_group_sop_enrols_every_group_each_week(in_acme: Company) -> None:
    chat = GroupChat.objects.create(chat_id="wr-1", name="会员群", owner=in_acme["bob"])
    GroupChat.objects.create(chat_id="wr-2", name="已解散", status="dismissed")
    now = timezone.now()
    weekday = (timezone.localtime(now).weekday() + 1) % 7  # tomorrow
    sop = make_sop(
        in_acme,
        kind="group",
        trigger_kind="weekly",
        trigger={"weekday": weekday, "time": "09:00"},
        reentry="after_completion",
        steps=[
            {"actions": [{"type": "task", "config": {"title": "发本周群公告", "body": "周末活动"}}]}
        ],
    )
    assert engine.sop_schedule_tick() == 0  # the first run is the next occurrence
    next_run = at(days=2)
    assert weekly_cycle(sop.trigger, next_run) != weekly_cycle(sop.trigger, now)
    assert engine.sop_schedule_tick(now=next_run) == 1
    assert engine.sop_schedule_tick(now=next_run) == 0
    assert engine.sop_dispatch_batch(now=next_run) == 1
    task = StaffTask.objects.get()
    assert (task.staff, task.kind, task.body) == (in_acme["bob"], "sop", "周末活动")
    assert engine.sop_schedule_tick(now=next_run + timedelta(days=7)) == 1
    assert list(Enrollment.objects.order_by("pk").values_list("group_chat_id", "key")) == [
        (chat.pk, f"c{weekly_cycle(sop.trigger, next_run)}"),
        (chat.pk, f"c{weekly_cycle(sop.trigger, next_run + timedelta(days=7))}"),
    ]
