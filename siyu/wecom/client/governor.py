"""The rate and quota governor: every outbound WeCom call asks it first.

WeCom's limits are the physics (see shared/wecom/README.md §A): per corp and API at most
10,000 calls a minute and 150,000 an hour, tighter for some endpoints; exceeding them blocks the
API for the rest of the window (45009). Counting our own calls atomically in one shared place
lets every worker process share one budget and stop *before* WeCom blocks us: the database by
default (it works everywhere, SQLite included), or Redis when ``SIYU_WECOM_RATE_REDIS_URL`` is
set. In the database each call is two committed row updates on rows every lane shares, which a
burst of adds turns into lock waits on the welcome lane; in Redis it is one round trip.

Quotas that are not call rates — the per-customer mass-send cap, reminders, the welcome-code
window, the contact-way quota — are pure functions here, so the console can tell the operator
beforehand what a plan would exceed.
"""

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Protocol

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from siyu.wecom.client.errors import RateLimited
from siyu.wecom.models import RateWindow

logger = logging.getLogger(__name__)
LOCAL_RATE_LIMIT_ERRCODE = 45009


@dataclass(frozen=True)
class Limit:
    per_minute: int
    per_hour: int


DEFAULT_LIMIT = Limit(per_minute=10_000, per_hour=150_000)
# Endpoint-specific limits from WeCom's documentation.
API_LIMITS: dict[str, Limit] = {
    "externalcontact/add_moment_task": Limit(per_minute=10, per_hour=600),
    "gettoken": Limit(per_minute=60, per_hour=600),
}

WELCOME_CODE_TTL = timedelta(seconds=20)
CONTACT_WAY_QUOTA = 500_000
CORP_TAG_QUOTA = 3_000
REMINDERS_PER_MESSAGE_PER_DAY = 3
# On-job transfers: each customer or group chat at most twice in 90 days (40128); group chat
# transfers: at most 300 a day per original owner.
TRANSFERS_PER_CUSTOMER = 2
TRANSFER_WINDOW = timedelta(days=90)
GROUP_CHAT_TRANSFERS_PER_OWNER_PER_DAY = 300


def limit_for(api: str) -> Limit:
    """The documented limit, tightened (never loosened) by ``SIYU_WECOM_RATE_LIMITS``."""
    documented = API_LIMITS.get(api, DEFAULT_LIMIT)
    override = settings.SIYU_WECOM_RATE_LIMITS.get(api) or settings.SIYU_WECOM_RATE_LIMITS.get("*")
    if not override:
        return documented
    return Limit(
        per_minute=min(documented.per_minute, int(override.get("per_minute", 10**9))),
        per_hour=min(documented.per_hour, int(override.get("per_hour", 10**9))),
    )


@dataclass(frozen=True)
class Window:
    name: str  # "minute" or "hour"
    seconds: int
    start: datetime
    limit: int


class CallCounts(Protocol):
    def take(self, tenant_id: int, api: str, windows: list[Window]) -> Window | None:
        """Count one call in every window; the first full window instead (nothing counted)."""

    def used(self, tenant_id: int, api: str, window: Window) -> int: ...


class DatabaseCallCounts:
    """A row per (tenant, api, window): a conditional increment, or the row's creation."""

    def take(self, tenant_id: int, api: str, windows: list[Window]) -> Window | None:
        for window in windows:
            if not self._take_one(tenant_id, api, window):
                return window
        return None

    def _take_one(self, tenant_id: int, api: str, window: Window) -> bool:
        key = self._key(tenant_id, api, window)
        rows = RateWindow.unscoped.filter(**key, count__lt=window.limit)
        if rows.update(count=F("count") + 1):
            return True
        try:
            with transaction.atomic():
                RateWindow.unscoped.create(**key, count=1)
            return window.limit >= 1
        except IntegrityError:
            # The window exists and is full (or filled up between our two statements).
            return bool(rows.update(count=F("count") + 1))

    def used(self, tenant_id: int, api: str, window: Window) -> int:
        row = RateWindow.unscoped.filter(**self._key(tenant_id, api, window)).first()
        return row.count if row else 0

    @staticmethod
    def _key(tenant_id: int, api: str, window: Window) -> dict[str, object]:
        return {
            "tenant_id": tenant_id,
            "api": api,
            "window": window.name,
            "window_start": window.start,
        }


# KEYS: one counter per window; ARGV: limit and time to live of each, in turn. All or nothing:
# a full window takes back what this call added to the windows before it.
_TAKE_SCRIPT = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if count > tonumber(ARGV[2 * i - 1]) then
    for j = 1, i do redis.call('DECR', KEYS[j]) end
    return i
  end
end
return 0
"""
_TTL_MARGIN = 60  # counters outlive their window a little, so a slow clock still finds them


class RedisCallCounts:
    """A counter per (tenant, api, window) in Redis, taken by one script: one round trip.
    While Redis is away, calls are counted in the database rather than made uncounted."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._take_script = self._redis.register_script(_TAKE_SCRIPT)
        self._prefix = prefix

    def _key(self, tenant_id: int, api: str, window: Window) -> str:
        return f"{self._prefix}:{tenant_id}:{api}:{window.name}:{int(window.start.timestamp())}"

    def take(self, tenant_id: int, api: str, windows: list[Window]) -> Window | None:
        keys = [self._key(tenant_id, api, w) for w in windows]
        args = [value for w in windows for value in (w.limit, w.seconds + _TTL_MARGIN)]
        try:
            full = int(self._take_script(keys=keys, args=args))
        except redis.RedisError:
            logger.warning("rate counts: Redis unavailable, counting %s in the database", api)
            return _DATABASE.take(tenant_id, api, windows)
        return windows[full - 1] if full else None

    def used(self, tenant_id: int, api: str, window: Window) -> int:
        try:
            return int(self._redis.get(self._key(tenant_id, api, window)) or 0)
        except redis.RedisError:
            return _DATABASE.used(tenant_id, api, window)


_DATABASE = DatabaseCallCounts()


@cache
def _redis_counts(url: str, prefix: str) -> RedisCallCounts:
    return RedisCallCounts(url, prefix)


def call_counts() -> CallCounts:
    url = settings.SIYU_WECOM_RATE_REDIS_URL
    return _redis_counts(url, settings.SIYU_WECOM_RATE_REDIS_PREFIX) if url else _DATABASE


def _windows(api: str, now: datetime) -> list[Window]:
    limit = limit_for(api)
    return [
        Window("minute", 60, now.replace(second=0, microsecond=0), limit.per_minute),
        Window("hour", 3600, now.replace(minute=0, second=0, microsecond=0), limit.per_hour),
    ]


def acquire(tenant_id: int, api: str, *, now: datetime | None = None) -> None:
    """Count one call to ``api``, or raise ``RateLimited`` if it would exceed a limit."""
    now = now or timezone.now()
    full = call_counts().take(tenant_id, api, _windows(api, now))
    if full is None:
        return
    elapsed = int((now - full.start).total_seconds())
    raise RateLimited(
        LOCAL_RATE_LIMIT_ERRCODE,
        f"{full.name} budget used",
        retry_after=full.seconds - elapsed,
        api=api,
    )


@dataclass(frozen=True)
class Exceedance:
    api: str
    window: str
    used: int
    planned: int
    limit: int


def check_plan(
    tenant_id: int, planned: dict[str, int], *, now: datetime | None = None
) -> list[Exceedance]:
    """What a plan of ``{api: number of calls}`` would exceed in the current windows."""
    now = now or timezone.now()
    counts = call_counts()
    found = []
    for api, calls in planned.items():
        for window in _windows(api, now):
            used = counts.used(tenant_id, api, window)
            if used + calls > window.limit:
                found.append(Exceedance(api, window.name, used, calls, window.limit))
    return found


class MassSendRule(StrEnum):
    """How many company mass sends one customer may receive (WeCom changed it over the years)."""

    DAYS_IN_MONTH = "days_in_month"  # N per natural month, N = days in that month (2025 rule)
    SEVEN_PER_WEEK = "seven_per_week"
    ONE_PER_DAY = "one_per_day"
    FOUR_PER_MONTH = "four_per_month"  # the 2019–2022 rule


def mass_send_window(rule: str, at: datetime) -> tuple[datetime, int]:
    """(start, cap) of the receive-quota period containing ``at``: a customer may receive
    ``cap`` company mass sends from ``start`` on (set-based planners count in SQL with it)."""
    local = timezone.localtime(at)
    kind = MassSendRule(rule)
    if kind is MassSendRule.ONE_PER_DAY:
        return local.replace(hour=0, minute=0, second=0, microsecond=0), 1
    if kind is MassSendRule.SEVEN_PER_WEEK:
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday()), 7
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(local.year, local.month)[1]
    return start, days if kind is MassSendRule.DAYS_IN_MONTH else 4


def mass_send_remaining(rule: str, received: list[datetime], at: datetime) -> int:
    """How many more company mass sends a customer may receive at ``at``, given the times of
    the ones they already received (all timezone-aware)."""
    start, cap = mass_send_window(rule, at)
    local = timezone.localtime(at)
    used = sum(1 for t in received if start <= timezone.localtime(t) <= local)
    return max(cap - used, 0)


def welcome_window_open(
    received_at: datetime, *, now: datetime | None = None, margin: float = 2.0
) -> bool:
    """Whether a welcome code received at ``received_at`` can still be used (keeping a margin for
    the call itself to arrive in time)."""
    now = now or timezone.now()
    return now - received_at < WELCOME_CODE_TTL - timedelta(seconds=margin)


def reminders_remaining(sent: list[datetime], *, now: datetime | None = None) -> int:
    now = now or timezone.now()
    recent = sum(1 for t in sent if now - t < timedelta(hours=24))
    return max(REMINDERS_PER_MESSAGE_PER_DAY - recent, 0)


def transfers_remaining(previous: list[datetime], *, now: datetime | None = None) -> int:
    """How many more on-job transfers a customer (or chat) may take, given the times of the ones
    already started (waiting or done)."""
    now = now or timezone.now()
    recent = sum(1 for t in previous if now - t < TRANSFER_WINDOW)
    return max(TRANSFERS_PER_CUSTOMER - recent, 0)


def group_chat_transfers_remaining(sent: int) -> int:
    """``sent``: group chats moved away from one owner in the last 24 h."""
    return max(GROUP_CHAT_TRANSFERS_PER_OWNER_PER_DAY - sent, 0)


def contact_ways_remaining(used: int) -> int:
    return max(CONTACT_WAY_QUOTA - used, 0)
