"""Channel burst benchmark: a steep ramp of customers scanning one channel code.

Runs the production shape on loopback: PostgreSQL, Redis, gunicorn receiving callbacks, and
Celery workers on their own queues (``callbacks``, ``welcome``, ``channels``, ``celery``). The
sandbox plays WeCom in a process of its own: the simulator's ``scan`` issues a welcome code
(valid 20 s, single use) and fires the encrypted ``add_external_contact`` callback at gunicorn;
Siyu's welcome lane must answer with ``send_welcome_msg`` before the sandbox refuses the code.
The ramp doubles the rate every second up to ``--peak`` adds a second (many adds share a
second), until ``--adds``.

Reports adds processed per second, the share of welcome messages WeCom accepted (= inside the
20-second window), add → welcome sent and add → tag applied (in Siyu, and marked in WeCom)
p50/p99, fission counts against the ground truth, and the CPU each process used per add
(PostgreSQL's and Redis's included). Usage: ``python bench/channel_burst.py --adds 20000``;
``--rate-counts database`` counts WeCom calls the embedded way. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from harness import ROOT, free_port, fresh_siyu, percentile, progress, wait_until_up

TOKEN = "benchtoken"  # noqa: S105
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF1"
CORP = "ww_bench_channels"
STAFF = [f"staff{i:02d}" for i in range(20)]


def ramp(total: int, start: int, peak: int) -> list[int]:
    """Adds per second: doubling from ``start`` to ``peak``, then flat until ``total``."""
    plan, rate = [], start
    while sum(plan) < total:
        plan.append(min(rate, peak, total - sum(plan)))
        rate *= 2
    return plan


def setup(
    sandbox_base: str, api_base: str, callback_url: str, participants: int
) -> tuple[int, list[str]]:
    """The tenant, its members and a channel tag group, the code under test (in WeCom), and a
    running 任务宝 campaign with ``participants`` participants; returns the code's id and the
    participants' contact-way config ids."""
    from django.utils import timezone

    from siyu.accounts.models import StaffMember
    from siyu.accounts.services import staff_upsert
    from siyu.channels.services import channel_code_create
    from siyu.core.services import tenant_create
    from siyu.core.tenancy import tenant_context
    from siyu.customers.services import customer_ensure
    from siyu.fission.services import campaign_create, participant_join
    from siyu.sandbox.client import SandboxControl
    from siyu.tags.services import tag_group_create

    control = SandboxControl(sandbox_base)
    control.create_corp(
        CORP,
        "bench-secret",
        app_secret="bench-app-secret",  # noqa: S106
        agent_id="1000002",
        callback_token=TOKEN,
        callback_aes_key=AES_KEY,
        callback_url=callback_url,
    )
    control.add_staff(
        CORP, [{"userid": u, "name": u, "department": [1], "main_department": 1} for u in STAFF]
    )
    tenant = tenant_create(
        slug="bench",
        name="Bench",
        corp_id=CORP,
        callback_token=TOKEN,
        callback_aes_key=AES_KEY,
        contact_secret="bench-secret",  # noqa: S106
        app_secret="bench-app-secret",  # noqa: S106
        agent_id="1000002",
        wecom_base_url=api_base,
    )
    with tenant_context(tenant):
        members = [staff_upsert(userid=u, name=u) for u in STAFF]
        StaffMember.objects.filter(pk=members[0].pk).update(role="admin")
        actor = StaffMember.objects.get(pk=members[0].pk)
        group = tag_group_create(actor=actor, name="渠道", tags=["地推", "爆发"])
        code = channel_code_create(
            actor=actor,
            name="爆发测试",
            staff_ids=[m.pk for m in members],
            tag_ids=list(group.tags.values_list("pk", flat=True)),
            welcome={"text": "{客户昵称}你好，我是{员工姓名}"},
            relation_remark="爆发",
        )
        campaign = campaign_create(
            actor=actor,
            kind="task",
            name="爆发裂变",
            starts_at=timezone.now() - timedelta(hours=1),
            ends_at=timezone.now() + timedelta(days=1),
            staff_ids=[m.pk for m in members],
            tiers=[
                {"threshold": 3, "kind": "link", "payload": "https://example.com/r", "stock": 10**6}
            ],
        )
        config_ids = []
        for n in range(participants):
            customer = customer_ensure(external_userid=f"wmseed{n:04d}", unionid=f"useed{n:04d}")
            config_ids.append(participant_join(campaign=campaign, customer=customer).config_id)
        return code.pk, config_ids


def scans_for(
    plan: list[int], config_id: str, participants: list[str], fission_share: float, seed: int
) -> list[list[tuple[str, dict[str, Any]]]]:
    """Each second's scans: most through the channel code, ``fission_share`` through the
    participants' codes; one in twenty of those is a repeat invitee, a WeChat user who scanned
    another participant's code at least five seconds earlier (CreateTime has whole seconds, so
    the first sighting is unambiguous). Every scan has its own unionid, so the ground truth of
    each participant's count is known here."""
    rng = random.Random(seed)
    seconds: list[list[tuple[str, dict[str, Any]]]] = []
    earlier: list[list[tuple[str, str]]] = []  # per second: (unionid, participant config id)
    seen: list[tuple[str, str]] = []  # first sightings five or more seconds old, grown per second
    n = 0
    for second, count in enumerate(plan):
        if second >= 5:
            seen.extend(earlier[second - 5])
        batch: list[tuple[str, dict[str, Any]]] = []
        firsts: list[tuple[str, str]] = []
        for _ in range(count):
            n += 1
            if not participants or rng.random() >= fission_share:
                batch.append(("scan", {"config_id": config_id, "unionid": f"u{n}"}))
                continue
            target = rng.choice(participants)
            if seen and rng.random() < 0.05:
                unionid, first = rng.choice(seen)
                others = [p for p in participants if p != first]
                batch.append(("scan", {"config_id": rng.choice(others), "unionid": unionid}))
                continue
            firsts.append((f"u{n}", target))
            batch.append(("scan", {"config_id": target, "unionid": f"u{n}"}))
        earlier.append(firsts)
        seconds.append(batch)
    return seconds


def fission_truth(seconds: list[list[tuple[str, dict[str, Any]]]], channel: str) -> Counter[str]:
    """Counted invites per participant config id: first sightings only."""
    seen: set[str] = set()
    truth: Counter[str] = Counter()
    for batch in seconds:
        for _, scan in batch:
            if scan["unionid"] not in seen:
                seen.add(scan["unionid"])
                if scan["config_id"] != channel:
                    truth[scan["config_id"]] += 1
    return truth


Scans = list[list[tuple[str, dict[str, Any]]]]


def drive(sandbox_base: str, seconds: Scans) -> tuple[float, float, Scans]:
    """Scan per the plan, one batch per second; returns (first scan, last scan) wall times and
    the scans WeCom took. A repeat invitee whose scan lands on a member they already have is
    refused by WeCom (no add, no callback), so it leaves the ground truth."""
    from siyu.sandbox.client import SandboxControl

    control = SandboxControl(sandbox_base)
    first = time.time()
    sent = 0
    accepted: Scans = []
    for second, batch in enumerate(seconds):
        tick = first + second
        taken: list[tuple[str, dict[str, Any]]] = []
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            for scan, result in zip(chunk, control.batch(CORP, chunk), strict=True):
                if result["ok"]:
                    taken.append(scan)
                elif "already a customer" not in str(result.get("error")):
                    raise SystemExit(f"sandbox refused a scan: {result}")
        accepted.append(taken)
        sent += len(taken)
        if second % 5 == 0:
            progress(f"second {second}: {len(taken)} adds (sent {sent})")
        time.sleep(max(0.0, tick + 1 - time.time()))
    return first, time.time(), accepted


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def servers_cpu() -> dict[str, float]:
    """CPU seconds so far of the PostgreSQL and Redis processes alive now (the workers keep
    their connections, so their backends live through the run)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(("postgres", "redis-server"), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        if name in totals:
            fields = raw[raw.rindex(")") + 2 :].split()
            totals[name] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return totals


def stop(procs: dict[str, subprocess.Popen[bytes]], timeout: float = 60) -> dict[str, float]:
    """Terminate every process and reap it with ``wait4``: the CPU each used, its pool
    children's included (a prefork pool reaps its children before it exits)."""
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    cpu = {}
    for role, proc in procs.items():
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu[role] = _cpu(usage)
    return cpu


def workers_ready(names: list[str], timeout: float = 300) -> None:
    """Wait until every worker answers a ping: on a loaded machine the niced workers took over
    a minute to start, and scans sent before then measured their start-up, not the pipeline."""
    from siyu.config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answered = {name for reply in app.control.ping(timeout=1) for name in reply}
        if answered >= set(names):
            return
    raise SystemExit(f"workers did not start: {sorted(set(names) - answered)}")


def measure(
    total: int, channel_adds: int, truth: Counter[str], first_scan: float, settle: float
) -> dict[str, Any]:
    from django.db import connection

    from siyu.channels.models import ChannelAdd, WelcomeSend, WelcomeStatus
    from siyu.core.models import DeliveryStatus, EventDelivery
    from siyu.fission.models import Participant
    from siyu.tags.models import CustomerTag, PushStatus, TagMarkPush
    from siyu.wecom.client.governor import WELCOME_CODE_TTL
    from siyu.wecom.models import CallbackInbox, InboxStatus

    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if (
            ChannelAdd.unscoped.count() >= channel_adds
            and CallbackInbox.unscoped.filter(change_type="add_external_contact").count() >= total
            and not CallbackInbox.unscoped.exclude(status=InboxStatus.DONE).exists()
            and not EventDelivery.unscoped.filter(status=DeliveryStatus.PENDING).exists()
            and not WelcomeSend.unscoped.filter(
                status__in=[WelcomeStatus.PENDING, WelcomeStatus.SENDING]
            ).exists()
        ):
            break
        time.sleep(2)
    adds = {
        customer: at for customer, at in ChannelAdd.unscoped.values_list("customer_id", "added_at")
    }
    created = sorted(ChannelAdd.unscoped.values_list("created_at", flat=True))
    sends = list(WelcomeSend.unscoped.values_list("status", "reason", "sent_at", "deadline"))
    outcome = Counter(s if s == WelcomeStatus.SENT else f"{s}:{r}" for s, r, _, _ in sends)
    # The deadline is WeCom's CreateTime (whole seconds: lags read up to 1 s long) + 20 s.
    welcome_lag = [
        (sent - (deadline - WELCOME_CODE_TTL)).total_seconds()
        for _, _, sent, deadline in sends
        if sent
    ]
    tagged = dict(
        CustomerTag.unscoped.filter(source="channel").values_list("customer_id", "applied_at")
    )
    marked = dict(
        TagMarkPush.unscoped.filter(status=PushStatus.DONE).values_list("customer_id", "done_at")
    )

    def lags(done: dict[int, datetime]) -> list[float]:
        return [(at - adds[c]).total_seconds() for c, at in done.items() if c in adds]

    span = (created[-1].timestamp() - first_scan) if created else float("nan")
    with connection.cursor() as cursor:  # a fresh database: its counters start at zero
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        sessions = cursor.fetchone()[0]
    counted = dict(Participant.unscoped.values_list("config_id", "counted"))
    wrong = {c: (counted.get(c, 0), n) for c, n in truth.items() if counted.get(c, 0) != n}
    wrong |= {c: (n, 0) for c, n in counted.items() if n and c not in truth}
    return {
        "fission_invites": sum(truth.values()),
        "fission_counted": sum(counted.values()),
        "fission_wrong": wrong,
        "adds": len(adds),
        "sessions": sessions,
        "rate": len(adds) / span if created else 0.0,
        "span": span,
        "outcome": outcome,
        "sent_share": outcome[WelcomeStatus.SENT] / channel_adds,
        "welcome_lag": welcome_lag,
        "tag_lag": lags(tagged),
        "mark_lag": lags(marked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adds", type=int, default=20_000)
    parser.add_argument("--start-rate", type=int, default=10, help="adds in the first second")
    parser.add_argument("--peak", type=int, default=150, help="adds per second at the top")
    parser.add_argument("--welcome-workers", type=int, default=8)
    parser.add_argument("--participants", type=int, default=50, help="fission participants")
    parser.add_argument(
        "--fission-share", type=float, default=0.2, help="share of scans through fission codes"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--settle", type=float, default=600, help="max seconds to drain")
    parser.add_argument(
        "--heavy-nice",
        type=int,
        default=10,
        help="niceness of the callbacks/channels/celery workers: the receiver and the welcome "
        "lane get the CPU first, as on a deployment that gives them machines of their own",
    )
    parser.add_argument(
        "--rate-counts",
        choices=["redis", "database"],
        default="redis",
        help="where the WeCom governor counts calls (SIYU_WECOM_RATE_REDIS_URL set or not)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/siyu_bench_channels"
        ),
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")
    )
    args = parser.parse_args()

    load_before = f"{os.getloadavg()[0]:.2f}"
    workdir = Path(tempfile.mkdtemp(prefix="siyu-bench-channels-"))
    python = sys.executable
    import redis

    broker = redis.Redis.from_url(args.broker_url)
    if broker.dbsize():
        raise SystemExit(f"{args.broker_url} is not empty; pick a free Redis database")
    env = fresh_siyu(workdir, args.database_url, args.broker_url)
    if args.rate_counts == "redis":
        env["SIYU_WECOM_RATE_REDIS_URL"] = args.broker_url  # flushed with it at the end
    from siyu.channels.models import ChannelCode

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The sandbox in a process of its own, as WeCom is: its callback senders and API must not
    # share this process's interpreter with the load generator.
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    procs: dict[str, subprocess.Popen[bytes]] = {
        "sandbox": subprocess.Popen(  # noqa: S603
            [python, "-m", "siyu", "sandbox", "serve", "--port", sandbox_url.rsplit(":", 1)[1]],
            env=env, cwd=ROOT,
        )
    }  # fmt: skip
    cpu: dict[str, float] = {}
    try:
        wait_until_up(sandbox_url + "/sandbox/faults")
        code_id, participants = setup(
            sandbox_url, sandbox_url + "/cgi-bin/", f"{base}/wecom/callback/bench/",
            args.participants,
        )  # fmt: skip
        config_id = ChannelCode.unscoped.get(pk=code_id).config_id
        procs["gunicorn"] = (
            subprocess.Popen(  # noqa: S603
                [python, "-m", "gunicorn", "siyu.config.wsgi", "-w", "2", "-k", "gthread",
                 "--threads", "8", "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
                env=env, cwd=ROOT,
            )
        )  # fmt: skip
        for queue, pool, concurrency, niceness in (
            ("callbacks", "prefork", 2, args.heavy_nice),
            ("welcome", "threads", args.welcome_workers, 0),
            ("channels", "threads", 4, args.heavy_nice),
            ("celery", "prefork", 2, args.heavy_nice),
        ):
            procs[queue] = (
                subprocess.Popen(  # noqa: S603
                    [python, "-m", "celery", "-A", "siyu.config", "worker", "-Q", queue,
                     "--pool", pool, "-c", str(concurrency), "-l", "ERROR",
                     "-n", f"{queue}@bench"],
                    env=env, cwd=ROOT, preexec_fn=partial(os.nice, niceness),
                )
            )  # fmt: skip
        wait_until_up(base + "/healthz")
        workers_ready([f"{q}@bench" for q in ("callbacks", "welcome", "channels", "celery")])
        plan = ramp(args.adds, args.start_rate, args.peak)
        seconds = scans_for(plan, config_id, participants, args.fission_share, args.seed)
        progress(f"ramp: {plan[:8]}… over {len(plan)} s")
        generator = _cpu(resource.getrusage(resource.RUSAGE_SELF))
        servers = servers_cpu()
        first, last, accepted = drive(sandbox_url, seconds)
        cpu["load generator"] = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - generator
        truth = fission_truth(accepted, config_id)
        adds = sum(len(batch) for batch in accepted)
        channel_adds = sum(1 for b in accepted for _, scan in b if scan["config_id"] == config_id)
        progress(f"{adds} adds in {last - first:.0f} s; draining")
        result = measure(adds, channel_adds, truth, first, args.settle)
        cpu |= {k: v - servers[k] for k, v in servers_cpu().items()}
    finally:
        cpu |= stop(procs)
        broker.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)
    # CPU is less sensitive to the other load on a shared machine than the rates are.
    services = sum(v for k, v in cpu.items() if k not in ("load generator", *servers))

    print(
        f"machine: {os.cpu_count()} cores, load average {load_before} before / "
        f"{os.getloadavg()[0]:.2f} after; PostgreSQL + Redis + sandbox on loopback; gunicorn "
        f"2x8 gthread; workers: callbacks 2 prefork, welcome {args.welcome_workers} threads, "
        f"channels 4 threads, celery 2 prefork (all but welcome at nice {args.heavy_nice}); "
        f"ramp {args.start_rate}/s doubling to {args.peak}/s, {args.adds} adds; WeCom calls "
        f"counted in {args.rate_counts}"
    )
    print("| measure | value |\n|---|---|")
    print(
        f"| adds processed | {result['adds']} in {result['span']:.0f} s = {result['rate']:.0f}/s |"
    )
    print(
        f"| welcome messages accepted by WeCom (inside 20 s) | {result['sent_share']:.2%} "
        f"({dict(result['outcome'])}) |"
    )
    print(
        f"| fission: counted invites vs ground truth | {result['fission_counted']} vs "
        f"{result['fission_invites']} over {args.participants} participants; "
        f"{len(result['fission_wrong'])} participants differ {result['fission_wrong']} |"
    )
    per_add = 1000 / max(result["adds"], 1)
    print(
        f"| CPU of the sandbox, gunicorn and workers (PostgreSQL and Redis not counted) | "
        f"{services:.0f} s = {services * per_add:.0f} ms per add processed |"
    )
    print(
        "| CPU per add by process | "
        + ", ".join(f"{role} {seconds * per_add:.1f} ms" for role, seconds in cpu.items())
        + " |"
    )
    print(f"| PostgreSQL connections opened (pg_stat_database.sessions) | {result['sessions']} |")
    for label, key in (
        ("add → welcome sent", "welcome_lag"),
        ("add → channel tags in Siyu", "tag_lag"),
        ("add → tags marked in WeCom", "mark_lag"),
    ):
        values = result[key]
        print(
            f"| {label} p50 / p99 | {percentile(values, 50):.2f} s / "
            f"{percentile(values, 99):.2f} s ({len(values)}) |"
        )


if __name__ == "__main__":
    main()
