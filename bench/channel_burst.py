"""Channel burst benchmark: a steep ramp of customers scanning one channel code.

Runs the production shape on loopback: PostgreSQL, Redis, gunicorn receiving callbacks, and
Celery workers on their own queues (``callbacks``, ``welcome``, ``celery``). The sandbox plays
WeCom in this process: the simulator's ``scan`` issues a welcome code (valid 20 s, single use)
and fires the encrypted ``add_external_contact`` callback at gunicorn; Siyu's welcome lane must
answer with ``send_welcome_msg`` before the sandbox refuses the code. The ramp doubles the rate
every second up to ``--peak`` adds a second (many adds share a second), until ``--adds``.

Reports adds processed per second, the share of welcome messages WeCom accepted (= inside the
20-second window), add → welcome sent and add → tag applied (in Siyu, and marked in WeCom)
p50/p99. Usage: ``python bench/channel_burst.py --adds 20000``. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
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


def setup(sandbox_base: str, api_base: str, callback_url: str) -> int:
    """The tenant, its members and a channel tag group, and the code under test (in WeCom)."""
    from siyu.accounts.models import StaffMember
    from siyu.accounts.services import staff_upsert
    from siyu.channels.services import channel_code_create
    from siyu.core.services import tenant_create
    from siyu.core.tenancy import tenant_context
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
        return code.pk


def drive(sandbox_base: str, config_id: str, plan: list[int]) -> tuple[float, float]:
    """Scan per the plan, one batch per second; returns (first scan, last scan) wall times."""
    from siyu.sandbox.client import SandboxControl

    control = SandboxControl(sandbox_base)
    first = time.time()
    for second, count in enumerate(plan):
        tick = first + second
        done = 0
        while done < count:
            chunk = min(500, count - done)
            results = control.batch(CORP, [("scan", {"config_id": config_id})] * chunk)
            failed = [r for r in results if not r["ok"]]
            if failed:
                raise SystemExit(f"sandbox refused scans: {failed[:2]}")
            done += chunk
        if second % 5 == 0:
            progress(f"second {second}: {count} adds (sent {sum(plan[: second + 1])})")
        time.sleep(max(0.0, tick + 1 - time.time()))
    return first, time.time()


def measure(total: int, first_scan: float, settle: float) -> dict[str, Any]:
    from siyu.channels.models import ChannelAdd, WelcomeSend, WelcomeStatus
    from siyu.tags.models import CustomerTag, PushStatus, TagMarkPush

    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if (
            ChannelAdd.unscoped.count() >= total
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
    sends = list(WelcomeSend.unscoped.values_list("status", "reason", "sent_at", "add__added_at"))
    outcome = Counter(s if s == WelcomeStatus.SENT else f"{s}:{r}" for s, r, _, _ in sends)
    # added_at is WeCom's CreateTime, whole seconds: lags read up to 1 s long.
    welcome_lag = [(sent - at).total_seconds() for s, _, sent, at in sends if sent]
    tagged = dict(
        CustomerTag.unscoped.filter(source="channel").values_list("customer_id", "applied_at")
    )
    marked = dict(
        TagMarkPush.unscoped.filter(status=PushStatus.DONE).values_list("customer_id", "done_at")
    )

    def lags(done: dict[int, datetime]) -> list[float]:
        return [(at - adds[c]).total_seconds() for c, at in done.items() if c in adds]

    span = (created[-1].timestamp() - first_scan) if created else float("nan")
    return {
        "adds": len(adds),
        "rate": len(adds) / span if created else 0.0,
        "span": span,
        "outcome": outcome,
        "sent_share": outcome[WelcomeStatus.SENT] / total,
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
    parser.add_argument("--settle", type=float, default=600, help="max seconds to drain")
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
    from siyu.channels.models import ChannelCode

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The sandbox in a process of its own, as WeCom is: its callback senders and API must not
    # share this process's interpreter with the load generator.
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    procs: list[subprocess.Popen[bytes]] = [
        subprocess.Popen(  # noqa: S603
            [python, "-m", "siyu", "sandbox", "serve", "--port", sandbox_url.rsplit(":", 1)[1]],
            env=env, cwd=ROOT,
        )
    ]  # fmt: skip
    try:
        wait_until_up(sandbox_url + "/sandbox/faults")
        code_id = setup(sandbox_url, sandbox_url + "/cgi-bin/", f"{base}/wecom/callback/bench/")
        config_id = ChannelCode.unscoped.get(pk=code_id).config_id
        procs.append(
            subprocess.Popen(  # noqa: S603
                [python, "-m", "gunicorn", "siyu.config.wsgi", "-w", "2", "-k", "gthread",
                 "--threads", "8", "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
                env=env, cwd=ROOT,
            )
        )  # fmt: skip
        for queue, pool, concurrency in (
            ("callbacks", "prefork", 2),
            ("welcome", "threads", args.welcome_workers),
            ("channels", "threads", 4),
            ("celery", "prefork", 2),
        ):
            procs.append(
                subprocess.Popen(  # noqa: S603
                    [python, "-m", "celery", "-A", "siyu.config", "worker", "-Q", queue,
                     "--pool", pool, "-c", str(concurrency), "-l", "ERROR",
                     "-n", f"{queue}@bench"],
                    env=env, cwd=ROOT,
                )
            )  # fmt: skip
        wait_until_up(base + "/healthz")
        time.sleep(3)  # the workers connect to the broker
        plan = ramp(args.adds, args.start_rate, args.peak)
        progress(f"ramp: {plan[:8]}… over {len(plan)} s")
        first, last = drive(sandbox_url, config_id, plan)
        progress(f"all {args.adds} scans in {last - first:.0f} s; draining")
        result = measure(args.adds, first, args.settle)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"machine: {os.cpu_count()} cores, load average {load_before} before / "
        f"{os.getloadavg()[0]:.2f} after; PostgreSQL + Redis + sandbox on loopback; gunicorn "
        f"2x8 gthread; workers: callbacks 2 prefork, welcome {args.welcome_workers} threads, "
        f"channels 4 threads, "
        f"celery 2 prefork; ramp {args.start_rate}/s doubling to {args.peak}/s, {args.adds} adds"
    )
    print("| measure | value |\n|---|---|")
    print(
        f"| adds processed | {result['adds']} in {result['span']:.0f} s = {result['rate']:.0f}/s |"
    )
    print(
        f"| welcome messages accepted by WeCom (inside 20 s) | {result['sent_share']:.2%} "
        f"({dict(result['outcome'])}) |"
    )
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
