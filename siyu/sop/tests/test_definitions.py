"""Bad SOPs are refused with a clear error and nothing changes."""

from typing import Any

import pytest

from siyu.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from siyu.sop import services
from siyu.sop.models import Enrollment, Sop, SopStatus
from siyu.sop.tests.conftest import add_customer, at, drain, make_sop
from siyu.tags.models import Tag
from siyu.testing.stories import Company

TASK = [{"actions": [{"type": "task", "config": {"title": "跟进"}}]}]


def _event(event_type: str, **conditions: Any) -> dict[str, Any]:
    return {
        "trigger_kind": "event",
        "trigger": {"event_type": event_type, "conditions": conditions},
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"trigger_kind": "event", "trigger": {"event_type": "no.such"}}, "未知的事件类型"),
        ({"trigger_kind": "added_days", "trigger": {"days": 0}}, "天数"),
        ({"trigger_kind": "weekly", "trigger": {"weekday": 2, "time": "25:00"}}, "HH:MM"),
        (
            {"trigger_kind": "weekly", "trigger": {"weekday": 2, "time": "09:00"}},
            "每周触发",
        ),
        ({**_event("customer.added"), "audience": 'tag:"不存在"'}, "不存在"),
        ({**_event("customer.added"), "goal_event": "no.such"}, "未知的事件类型"),
        ({**_event("customer.added"), "steps": []}, "1–20"),
        (
            {
                **_event("customer.added"),
                "steps": [
                    {"actions": []},
                    {"condition": "stage:paid", "else_action": "goto", "else_goto": 1},
                ],
            },
            "循环",
        ),
        (
            {
                **_event("customer.added"),
                "steps": [{"actions": [{"type": "stage", "config": {"stage": "x"}}]}],
            },
            "未知的生命周期阶段",
        ),
        (
            {**_event("customer.added"), "steps": [{"actions": [{"type": "rm", "config": {}}]}]},
            "未知的动作类型",
        ),
        ({"kind": "group", **_event("customer.added")}, "群 SOP"),
    ],
)
def test_bad_definitions_are_refused(in_acme: Company, fields: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        services.sop_create(actor=in_acme["ops"], **{"name": "坏的", "steps": TASK, **fields})
    assert not Sop.objects.exists()


def test_an_unknown_tag_is_not_found(in_acme: Company) -> None:
    steps = [{"actions": [{"type": "tag_add", "config": {"tag_ids": [999999]}}]}]
    with pytest.raises(NotFound):
        services.sop_create(actor=in_acme["ops"], name="x", steps=steps, **_event("customer.added"))


def test_a_schedule_in_the_past_or_an_empty_audience_cannot_start(in_acme: Company) -> None:
    past = make_sop(
        in_acme, activate=False, trigger_kind="date", trigger={"at": at(minutes=-5).isoformat()}
    )
    with pytest.raises(InvalidInput, match="已经过去"):
        services.sop_activate(actor=in_acme["ops"], sop_id=past.pk)
    nobody = make_sop(
        in_acme,
        activate=False,
        trigger_kind="date",
        trigger={"at": at(days=1).isoformat()},
        audience="stage:agent",
    )
    add_customer(in_acme, "wm-1")
    with pytest.raises(InvalidInput, match="没有任何客户"):
        services.sop_activate(actor=in_acme["ops"], sop_id=nobody.pk)
    assert set(Sop.objects.values_list("status", flat=True)) == {SopStatus.DRAFT}


def test_an_sop_that_re_triggers_itself_needs_a_re_entry_limit(in_acme: Company, vip: Tag) -> None:
    loop = {
        **_event("customer.tags_changed", added_ids=vip.pk),
        "steps": [
            {"actions": [{"type": "tag_remove", "config": {"tag_ids": [vip.pk]}}]},
            {"actions": [{"type": "tag_add", "config": {"tag_ids": [vip.pk]}}]},
        ],
    }
    endless = make_sop(in_acme, activate=False, reentry="after_completion", **loop)
    with pytest.raises(InvalidInput, match="无限循环"):
        services.sop_activate(actor=in_acme["ops"], sop_id=endless.pk)
    # A minimum interval (or "once") bounds it.
    make_sop(in_acme, reentry="after_completion", reentry_interval_hours=24, **loop)
    make_sop(in_acme, **loop)


def test_two_sops_that_trigger_each_other_endlessly_are_refused(in_acme: Company) -> None:
    to_intent = make_sop(
        in_acme,
        name="A",
        reentry="after_completion",
        steps=[{"actions": [{"type": "stage", "config": {"stage": "intent"}}]}],
        **_event("customer.stage_changed", to="normal"),
    )
    back = make_sop(
        in_acme,
        name="B",
        activate=False,
        reentry="after_completion",
        steps=[{"actions": [{"type": "stage", "config": {"stage": "normal"}}]}],
        **_event("customer.stage_changed", to="intent"),
    )
    with pytest.raises(InvalidInput, match="A"):
        services.sop_activate(actor=in_acme["ops"], sop_id=back.pk)
    assert to_intent.status == SopStatus.ACTIVE


def test_steps_freeze_once_someone_is_enrolled(in_acme: Company) -> None:
    sop = make_sop(in_acme, **_event("customer.added"))
    fields: dict[str, Any] = {"name": "改名", "steps": TASK, **_event("customer.added")}
    services.sop_update(actor=in_acme["ops"], sop_id=sop.pk, **fields)
    add_customer(in_acme, "wm-1")
    drain()
    assert Enrollment.objects.count() == 1
    services.sop_update(actor=in_acme["ops"], sop_id=sop.pk, **{**fields, "name": "再改名"})
    changed = [{"delay_minutes": 5, "actions": []}]
    with pytest.raises(Conflict):
        services.sop_update(actor=in_acme["ops"], sop_id=sop.pk, **{**fields, "steps": changed})
    sop.refresh_from_db()
    assert sop.name == "再改名"


def test_only_sop_managers_may_write(in_acme: Company) -> None:
    with pytest.raises(PermissionDenied):
        services.sop_create(
            actor=in_acme["alice"], name="x", steps=TASK, **_event("customer.added")
        )
    with pytest.raises(PermissionDenied):
        services.sop_create(
            actor=in_acme["manager"], name="x", steps=TASK, **_event("customer.added")
        )
