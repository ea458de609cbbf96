"""The governor's quota arithmetic: what a plan would exceed, before anything is sent."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from siyu.wecom.client import governor

CST = timezone.get_fixed_timezone(8 * 60)


def at(day: int, hour: int = 12, month: int = 2) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=CST)


@pytest.mark.parametrize(
    ("rule", "received", "expected"),
    [
        ("days_in_month", [at(d, hour=1) for d in range(1, 22)], 7),  # February 2026: 28 days
        ("days_in_month", [at(d, hour=1) for d in range(1, 22)] * 2, 0),
        ("days_in_month", [at(28, month=1)], 28),  # last month does not count
        ("four_per_month", [at(1), at(2), at(3)], 1),
        ("seven_per_week", [at(16), at(17), at(18), at(19), at(20), at(21)], 1),  # Mon 16 – Sat 21
        ("seven_per_week", [at(15)], 7),  # Sunday 15 belongs to the previous week
        ("one_per_day", [at(22, hour=0)], 0),
        ("one_per_day", [at(21, hour=23)], 1),
    ],
)
def test_mass_send_remaining(rule: str, received: list[datetime], expected: int, settings) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"
    assert governor.mass_send_remaining(rule, received, at(22, hour=20)) == expected


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="weekly_ish"):
        governor.mass_send_remaining("weekly_ish", [], at(1))


def test_the_welcome_window_keeps_a_margin_for_the_call() -> None:
    received = datetime(2026, 1, 1, tzinfo=UTC)
    assert governor.welcome_window_open(received, now=received + timedelta(seconds=17))
    assert not governor.welcome_window_open(received, now=received + timedelta(seconds=18.5))
    assert not governor.welcome_window_open(received, now=received + timedelta(seconds=25))


def test_reminders_are_capped_at_three_a_day() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    sent = [now - timedelta(hours=h) for h in (1, 5, 30)]
    assert governor.reminders_remaining(sent, now=now) == 1
    assert governor.reminders_remaining([*sent, now - timedelta(minutes=5)], now=now) == 0


def test_contact_way_quota() -> None:
    assert governor.contact_ways_remaining(499_990) == 10
    assert governor.contact_ways_remaining(600_000) == 0
