"""Half a year of the demo company, lived rather than written.

Nothing here writes Siyu's tables. The replay travels the clock back, then lets people act:
customers scan channel codes and delete staff in the sandbox, whose callbacks reach Siyu's
callback URL (through its WSGI application, in this process); operators create codes, content,
campaigns and mass sends through Siyu's services; customers read articles, join campaigns and
pay at the sandbox's cashier; each night the scheduled jobs run as the beat would run them. Jobs
run eagerly, one writer at a time, so the same seed gives the same company.
"""

from __future__ import annotations

import heapq
import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from siyu.accounts.models import Role, StaffMember
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, CustomerIdentity, IdentityKind
from siyu.demo import cast
from siyu.sandbox.httpd import Sandbox

logger = logging.getLogger(__name__)

DEMO_MCHID = "1900000109"
DEMO_API_V3_KEY = "demo-api-v3-key-0123456789abcdef"  # noqa: S105 (the sandbox's)
WORK_DAY = (9 * 3600, 22 * 3600)  # customers act between 9:00 and 22:00
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Plan:
    # Adds over the whole history, fission invitees included. Each add runs Siyu's whole path
    # (callback, welcome, tags, SOP, rollups…) with what follows from it: about 0.25 s on a
    # quiet 2-core machine, so the default keeps a first start under four minutes there;
    # ``--customers`` makes a bigger company.
    customers: int = 800
    days: int = 180
    seed: int = 2026


@dataclass
class Friend:
    """A customer as the replay knows them: who they added and what they did."""

    ext: str
    userid: str
    unionid: str
    orders: int = 0


@dataclass
class Tally:
    adds: int = 0
    deletes: int = 0
    opens: int = 0
    orders: int = 0
    mass_sends: int = 0
    participants: int = 0
    errors: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # action → its first error
    seconds: dict[str, float] = field(default_factory=dict)  # action → time spent


class Stage(Protocol):
    """Where people act: WeCom (the sandbox) and WeChat Pay's cashier (its pay emulator)."""

    base_url: str

    def wecom(self, corpid: str, action: str, **params: Any) -> dict[str, Any]: ...

    def pay(self, prepay_id: str) -> None: ...


class LocalStage:
    """The sandbox in this process; callbacks and notifications arrive before a call returns."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.base_url = sandbox.base_url

    def wecom(self, corpid: str, action: str, **params: Any) -> dict[str, Any]:
        result = self.sandbox.simulator.run(corpid, action, params)
        self.sandbox.dispatcher.deliver_queued()
        return result

    def pay(self, prepay_id: str) -> None:
        self.sandbox.pay.pay(prepay_id)


class RemoteStage:
    """The running sandbox server: its callbacks go to the running Siyu, as WeCom's would."""

    def __init__(self, base_url: str) -> None:
        from siyu.sandbox.client import SandboxControl

        self.base_url = base_url
        self.control = SandboxControl(base_url)

    def wecom(self, corpid: str, action: str, **params: Any) -> dict[str, Any]:
        return self.control.simulate(corpid, action, **params)

    def pay(self, prepay_id: str) -> None:
        self.control.pay(prepay_id)


class Company:
    """The demo company's people and what they do; the replay schedules their acts over half a
    year, the live activity picks one every few seconds."""

    def __init__(self, stage: Stage, rng: random.Random, site_url: str = "") -> None:
        self.stage = stage
        self.rng = rng
        self.site_url = site_url
        self.tally = Tally()
        self.friends: list[Friend] = []
        self.people = "demo-u"  # unionid prefix of the people who add staff
        self.tenant: Tenant
        self.corpid = ""

    def _wecom(self, action: str, **params: Any) -> dict[str, Any]:
        """A person acts in WeCom."""
        return self.stage.wecom(self.corpid, action, **params)

    def _at(self, when: float, action: str, *args: Any) -> None:
        """A follow-up act; only the replay keeps a calendar."""

    def act(self, action: str, *args: Any) -> None:
        handler = getattr(self, f"_act_{action}")
        began = time.perf_counter()
        try:
            handler(*args)
        except Exception as exc:
            # One person's odd action never stops the company; it is counted.
            self.tally.errors += 1
            self.tally.failures.setdefault(action, f"{type(exc).__name__}: {exc}")
            logger.warning("demo action %s%r failed", action, args, exc_info=True)
        finally:
            spent = time.perf_counter() - began
            self.tally.seconds[action] = self.tally.seconds.get(action, 0.0) + spent

    def load(self) -> None:
        """What the company has, read back (the live activity starts from a replayed one)."""
        from siyu.channels.models import ChannelCode, CodeStatus
        from siyu.content.models import ContentItem
        from siyu.shop.models import Sku

        self.tenant = Tenant.objects.get(slug="demo")
        self.corpid = self.tenant.corp_id
        with tenant_context(self.tenant):
            self.admin = StaffMember.objects.get(userid="admin")
            self.ops = StaffMember.objects.get(userid="ops")
            weights = {c.name: c.weight for c in cast.CODES}
            self.codes = [
                (code, weights.get(code.name, 0.1))
                for code in ChannelCode.objects.filter(status=CodeStatus.ACTIVE).exclude(
                    config_id=""
                )
            ]
            self.articles = list(ContentItem.objects.filter(kind="article", archived_at=None))
            self.skus = list(Sku.objects.filter(is_active=True))

    # --- what people do ---------------------------------------------------------------------------

    def _customer(self, ext: str) -> Customer | None:
        identity = CustomerIdentity.objects.filter(
            kind=IdentityKind.EXTERNAL_USERID, value=ext
        ).first()
        return identity.customer if identity else None

    def _later(self, now: float, low_days: float, high_days: float) -> float:
        return now + self.rng.uniform(low_days, high_days) * 86400

    def _act_add(self, config_id: str | None = None) -> None:
        if config_id is None:
            codes = [c for c, _ in self.codes]
            config_id = self.rng.choices(codes, [w for _, w in self.codes])[0].config_id
        unionid = f"{self.people}{self.tally.adds:06d}"
        added = self._wecom(
            "scan", config_id=config_id, unionid=unionid, name=cast.customer_name(self.rng)
        )
        self.tally.adds += 1
        friend = Friend(added["external_userid"], added["userid"], unionid)
        self.friends.append(friend)
        now = time.time()
        roll = self.rng.random()
        if roll < 0.06:
            self._at(self._later(now, 0.2, 20), "delete", friend)
            return
        if self.rng.random() < 0.45:
            self._at(self._later(now, 0.1, 10), "open", friend)
        if self.rng.random() < 0.22:
            self._at(self._later(now, 1, 30), "order", friend)

    def _act_delete(self, friend: Friend) -> None:
        self._wecom("customer_delete", userid=friend.userid, external_userid=friend.ext)
        self.tally.deletes += 1

    def _act_open(self, friend: Friend) -> None:
        from siyu.content.services import tracked_url, visit_open

        customer = self._customer(friend.ext)
        sender = StaffMember.objects.filter(userid=friend.userid).first()
        if customer is None or sender is None:
            return
        url = tracked_url(
            item=self.rng.choice(self.articles), sender=sender, source="单聊", customer=customer
        )
        # What the article page does once WeChat's OAuth has named the reader.
        visit_open(
            token=url.rstrip("/").rsplit("/", 1)[1],
            customer=customer,
            browser_key=friend.unionid,
            user_agent="Mozilla/5.0 (iPhone) MicroMessenger/8.0",
        )
        self.tally.opens += 1

    def _act_order(self, friend: Friend) -> None:
        from siyu.shop.services import order_create, payment_notify_url, payment_start

        customer = self._customer(friend.ext)
        staff = StaffMember.objects.filter(userid=friend.userid).first()
        if customer is None:
            return
        lines = [
            (sku, self.rng.choice((1, 1, 1, 2)))
            for sku in self.rng.sample(self.skus, self.rng.choice((1, 1, 2)))
        ]
        order = order_create(customer=customer, staff=staff, lines=lines, channel="staff_link")
        start = payment_start(
            order=order, openid=f"o-{friend.unionid}", notify_url=payment_notify_url()
        )
        if self.rng.random() < 0.12:
            return  # left at the cashier: the order expires unpaid
        self.stage.pay(start.payment.prepay_id)
        self.tally.orders += 1
        friend.orders += 1
        if self.rng.random() < 0.35 / friend.orders:
            self._at(self._later(time.time(), 15, 60), "order", friend)  # a repurchase


class Replay(Company):
    """One run: ``Replay(plan, LocalStage(sandbox), site_url).run(progress)``."""

    def __init__(self, plan: Plan, stage: LocalStage, site_url: str) -> None:
        super().__init__(stage, random.Random(plan.seed), site_url)
        self.local = stage
        self.plan = plan
        self._queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = count()

    def _at(self, when: float, action: str, *args: Any) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), action, args))

    # --- the run --------------------------------------------------------------------------------

    def run(self, progress: Progress) -> Tally:
        import time_machine

        today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        self.start = today - timedelta(days=self.plan.days)
        end = today.timestamp()  # history stops at midnight; what comes later is live
        from siyu.config.celery import app

        app.loader.import_default_modules()  # the tasks modules, as a worker loads them
        with time_machine.travel(self.start + timedelta(hours=8), tick=False) as traveller:
            self._setup()
            self._schedule()
            total = len(self._queue)
            done = 0
            while self._queue and self._queue[0][0] < end:
                when, _, action, args = heapq.heappop(self._queue)
                traveller.move_to(datetime.fromtimestamp(when, tz=timezone.get_current_timezone()))
                with tenant_context(self.tenant):
                    self.act(action, *args)
                done += 1
                if done % 25 == 0:
                    total = max(total, done + len(self._queue))
                    day = int((when - self.start.timestamp()) // 86400) + 1
                    progress(done, total, f"第 {min(day, self.plan.days)}/{self.plan.days} 天")
            progress(done, done, f"第 {self.plan.days}/{self.plan.days} 天")
        return self.tally

    # --- the company ------------------------------------------------------------------------------

    def _setup(self) -> None:
        out = io.StringIO()
        call_command(
            "demo_setup", sandbox_url=self.stage.base_url, site_url=self.site_url, stdout=out
        )
        self.tenant = Tenant.objects.get(slug="demo")
        self.corpid = self.tenant.corp_id
        with tenant_context(self.tenant):
            for userid, name, department in cast.staff_roster():
                self._wecom("create_user", userid=userid, name=name, department=[department])
            self.admin = StaffMember.objects.get(userid="admin")
            self.ops = StaffMember.objects.get(userid="ops")
            self._tags()
            self._codes()
            self._content()
            self._shop()
            self._sop()

    def _tags(self) -> None:
        from siyu.tags.services import tag_group_create

        made = {}
        for name, tags in (
            ("渠道来源", cast.CHANNEL_TAGS),
            ("兴趣偏好", cast.INTEREST_TAGS),
            ("意向程度", cast.INTENT_TAGS),
        ):
            group = tag_group_create(actor=self.admin, name=name, tags=list(tags), mass_send=True)
            made.update({t.name: t for t in group.tags.all()})
        self.tags = made

    def _team(self, department: int) -> list[StaffMember]:
        """The department's sales members, the demo's own staff login first: whoever signs in
        as ``staff`` has customers of their own."""
        members = StaffMember.objects.filter(departments__wecom_id=department, role=Role.STAFF)
        return sorted(members, key=lambda m: (m.userid != "staff", m.userid))

    def _codes(self) -> None:
        from siyu.channels.services import channel_code_create

        self.codes = []
        for code in cast.CODES:
            team = self._team(code.team)
            made = channel_code_create(
                actor=self.admin,
                name=code.name,
                kind="multi",
                staff_ids=[m.pk for m in team[:6]],
                backup_ids=[m.pk for m in team[6:8]],
                tag_ids=[self.tags[t].pk for t in code.tags],
                welcome={"text": code.welcome},
                daily_cap=40,
                relation_remark=code.name.removesuffix("码"),
            )
            self.codes.append((made, code.weight))

    def _content(self) -> None:
        from siyu.content.services import item_create

        self.articles = [
            item_create(actor=self.ops, kind="article", title=title, body=body)
            for title, body in cast.ARTICLES
        ]

    def _shop(self) -> None:
        from siyu.sandbox.client import SandboxControl
        from siyu.shop.services import (
            payment_account_configure,
            product_save,
            sku_save,
            stock_adjust,
        )
        from siyu.system.management.commands.demo_setup import DEMO_WECHAT_APPID

        with SandboxControl(self.stage.base_url) as control:
            control.add_pay_merchant(DEMO_MCHID, DEMO_WECHAT_APPID, DEMO_API_V3_KEY)
        payment_account_configure(
            actor=self.admin,
            mchid=DEMO_MCHID,
            appid=DEMO_WECHAT_APPID,
            api_v3_key=DEMO_API_V3_KEY,
            api_base_url=self.stage.base_url + "/",
        )
        self.skus = []
        for name, skus in cast.CATALOG:
            product = product_save(actor=self.admin, name=name, description=f"{name}，示例商品")
            for sku_name, price in skus:
                sku = sku_save(actor=self.admin, product=product, name=sku_name, price_fen=price)
                self.skus.append(stock_adjust(actor=self.admin, sku=sku, delta=100_000))

    def _sop(self) -> None:
        from siyu.sop.services import sop_activate, sop_create

        day = 24 * 60
        steps = [(60, "新客破冰：问清需求和口味"), (3 * day, "发一篇泡茶指南，邀请试饮")]
        steps.append((7 * day, "回访：是否需要复购提醒"))
        sop = sop_create(
            actor=self.ops,
            name="新客 7 天培育",
            trigger_kind="event",
            trigger={"event_type": "customer.added", "conditions": {}},
            steps=[
                {"delay_minutes": delay, "actions": [{"type": "task", "config": {"title": title}}]}
                for delay, title in steps
            ],
        )
        sop_activate(actor=self.ops, sop_id=sop.pk)

    # --- the calendar ---------------------------------------------------------------------

    def _day_weight(self, day: int) -> float:
        """Growth over the half year, busier weekends, and the campaigns' bumps."""
        weekday = (self.start + timedelta(days=day)).weekday()
        return (1 + day / self.plan.days) * (1.3 if weekday >= 5 else 1.0)

    def _schedule(self) -> None:
        days = self.plan.days
        organic = int(self.plan.customers * 0.8)  # the rest come through the campaigns
        weights = [self._day_weight(d) for d in range(days)]
        scale = organic / sum(weights)
        base = self.start.timestamp()
        for day, weight in enumerate(weights):
            n = int(weight * scale + self.rng.random())
            for _ in range(n):
                self._at(base + day * 86400 + self.rng.uniform(*WORK_DAY), "add")
            self._at(base + day * 86400 + 23.5 * 3600, "night", day == days - 1)
        invitees = self.plan.customers - organic
        self._at(base + int(days * 0.25) * 86400 + 9 * 3600, "campaign", "task", invitees // 2)
        self._at(base + int(days * 0.7) * 86400 + 9 * 3600, "campaign", "group", invitees // 2)
        for fraction in (0.2, 0.5, 0.85):
            self._at(base + int(days * fraction) * 86400 + 10 * 3600, "mass_send")

    def _act_campaign(self, kind: str, invitees: int) -> None:
        from PIL import Image

        from siyu.fission.services import campaign_create, campaign_poster_set

        now = timezone.now()
        team = self._team(3) + self._team(4)
        group_chats = None
        if kind == "group":
            owner = team[0].userid
            group_chats = []
            for n in (1, 2, 3):
                chat = self._wecom("create_group", owner=owner, name=f"新品试饮 {n} 群")
                group_chats.append(
                    {"chat_id": chat["chat_id"], "name": f"新品试饮 {n} 群", "capacity": 200}
                )
        campaign = campaign_create(
            actor=self.ops,
            kind=kind,
            name="老带新 · 邀 3 位好友送茶礼" if kind == "task" else "新品试饮群裂变",
            starts_at=now,
            ends_at=now + timedelta(days=30),
            staff_ids=[m.pk for m in team[:8]],
            tiers=[
                {"threshold": 3, "kind": "coupon", "payload": "满 100 减 20 券", "stock": 500},
                {"threshold": 6, "kind": "staff_task", "payload": "明前龙井小罐装", "stock": 100},
            ],
            tag_ids=[self.tags["老客推荐"].pk],
            group_chats=group_chats,
        )
        art = io.BytesIO()
        Image.new("RGB", (750, 1334), (46, 125, 50)).save(art, format="PNG")
        campaign_poster_set(
            campaign=campaign,
            artwork=art.getvalue(),
            layout={
                "avatar": {"x": 40, "y": 40, "size": 96},
                "nickname": {"x": 160, "y": 70, "size": 36},
                "qr": {"x": 255, "y": 950, "size": 240},
            },
        )
        # Existing customers join over the first days; each brings a few friends.
        pool = [f for f in self.friends if f.orders or self.rng.random() < 0.3]
        at = time.time()
        brought = 0
        while brought < invitees and pool:
            friend = pool.pop(self.rng.randrange(len(pool)))
            at += self.rng.uniform(600, 7200)
            friends = min(self.rng.choice((0, 1, 2, 3, 3, 4, 6)), invitees - brought)
            self._at(at, "join", campaign.pk, friend, friends)
            brought += friends

    def _act_join(self, campaign_id: int, friend: Friend, friends: int) -> None:
        """A customer joins a campaign; ``friends`` of theirs scan their code later."""
        from siyu.fission.models import Campaign
        from siyu.fission.services import participant_join

        customer = self._customer(friend.ext)
        if customer is None:
            return
        campaign = Campaign.objects.get(pk=campaign_id)
        participant = participant_join(campaign=campaign, customer=customer)
        self.tally.participants += 1
        for _ in range(friends):
            self._at(self._later(time.time(), 0.01, 14), "add", participant.config_id)

    def _act_mass_send(self) -> None:
        from siyu.masssend.services import mass_send_create

        interest = self.tags["绿茶"] if self.tally.mass_sends % 2 == 0 else self.tags["老客推荐"]
        channel = [self.tags[t].pk for t in cast.CHANNEL_TAGS]
        send = mass_send_create(
            actor=self.ops,
            kind="customers",
            name=f"{timezone.localtime():%m月}上新推荐",
            audience_kind="tags",
            audience={"tag_ids": channel if self.tally.mass_sends != 1 else [interest.pk]},
            text="新茶上市，老客专享价，点开看看～",
            content_item_id=self.articles[1].pk,
        )
        self.tally.mass_sends += 1
        corp = self.local.sandbox.world.corps[self.corpid]
        for msgid, task in list(corp.mass_sends.items()):
            for userid, (status, _) in task.task_status.items():
                if status != 2 and self.rng.random() < 0.9:  # a few members never confirm
                    self._wecom("confirm_mass_send", msgid=msgid, userid=userid)
        logger.info("mass send %s confirmed in the sandbox", send.pk)

    def _act_night(self, last: bool) -> None:
        """The scheduled jobs, as the beat would run them by the end of the day. The costly
        whole-company ones run weekly (scores) or once at the end (reconciliation, which finds
        nothing to heal when no callback was lost)."""
        from siyu.config.celery import app

        sunday = timezone.localtime().weekday() == 6
        skip = set() if last else {"reconcile-wecom-nightly"}
        if not (last or sunday):
            skip.add("insights-refresh-scores")
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            if name in skip:
                continue
            began = time.perf_counter()
            app.tasks[str(entry["task"])].apply()
            key = f"night {name}"
            self.tally.seconds[key] = self.tally.seconds.get(key, 0.0) + time.perf_counter() - began


def _siyu_in_process() -> Any:
    """Siyu's WSGI application for the in-process sandbox. A request served on one of the
    sandbox's own threads (the live activity's payments, through its HTTP API) closes that
    thread's database connection: the thread ends, the connection would linger."""
    handler = WSGIHandler()
    driver = threading.get_ident()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return handler(environ, start_response)
        finally:
            if threading.get_ident() != driver:
                connections.close_all()

    return app


@contextmanager
def local_sandbox(port: int, state_file: Any) -> Iterator[Sandbox]:
    """The demo's sandbox in this process: callbacks and payment notifications go straight into
    Siyu's WSGI application; its state is saved for the sandbox server that runs afterwards."""
    transport = httpx.WSGITransport(app=_siyu_in_process())
    sandbox = Sandbox(
        port=port, callback_workers=0, retry_delay=0.05, state_file=state_file, transport=transport
    )
    # Callbacks run through Siyu's WSGI application in this thread: keep this thread's database
    # connection across them instead of reconnecting after every request.
    connection.ensure_connection()
    connection.close_at = None
    try:
        with sandbox:
            yield sandbox
    finally:
        connection.close()
