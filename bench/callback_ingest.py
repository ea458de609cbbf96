"""Callback ingest benchmark: WeCom callbacks → receiver → inbox → processed.

Starts Siyu under gunicorn (gthread) on loopback with PostgreSQL and Redis, and two Celery worker
processes; prepares N distinct, encrypted ``add_external_contact`` callbacks exactly as WeCom
(and the sandbox) sends them; then drives load with wrk (C, so the generator does not take the
server's CPU the way a Python client would) and measures:

- accepted callbacks per second (stored in the inbox, answered 200) and p50/p99 latency;
- the same load against ``/healthz`` in the same run, as the baseline ratio;
- end to end: inbox received_at → processed_at p50/p99 and processing throughput.

Usage: ``make bench-callbacks`` (needs wrk: ``apt-get install wrk``). Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import ROOT, free_port, fresh_siyu, percentile, progress, wait_until_up

TOKEN = "benchtoken"  # noqa: S105
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CORP = "ww_bench_corp"
WRK_THREADS = 2
# Each wrk thread has its own Lua state: without an offset per thread, every thread would send
# the same sequence and half the "accepted" callbacks would be duplicates.
WRK_SCRIPT = """
local requests = dofile("%s")
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local i = nil
request = function()
  i = ((i or id) + %d) %% #requests
  local r = requests[i + 1]
  return wrk.format("POST", r[1], {["Content-Type"] = "text/xml"}, r[2])
end
"""


def build_requests(n: int, start_ts: int) -> list[tuple[str, str]]:
    """(query string, body) for n distinct callbacks, encrypted as WeCom does."""
    from siyu.wecom.crypto import MsgCrypt

    crypt = MsgCrypt(TOKEN, AES_KEY, CORP)
    out = []
    for i in range(n):
        inner = (
            f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
            "<FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{start_ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_contact]]></Event>"
            "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
            f"<UserID><![CDATA[staff{i % 40}]]></UserID>"
            f"<ExternalUserID><![CDATA[wmbench{i:08d}]]></ExternalUserID>"
            f"<State><![CDATA[bench]]></State>"
            f"<WelcomeCode><![CDATA[{secrets.token_hex(8)}]]></WelcomeCode></xml>"
        )
        nonce = str(secrets.randbelow(10**9))
        body, signature = crypt.encrypt_message(inner, timestamp=str(start_ts), nonce=nonce)
        out.append((f"msg_signature={signature}&timestamp={start_ts}&nonce={nonce}", body))
    return out


def run_wrk(
    url: str,
    requests: list[tuple[str, str]] | None,
    *,
    connections: int,
    seconds: float,
    workdir: Path,
) -> dict[str, float]:
    args = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if requests is not None:
        path = "/" + url.split("/", 3)[3]
        # [=[ … ]=]: the bodies contain CDATA's "]]", which would end a plain [[ … ]] string.
        rows = [f'{{"{path}?{query}", [=[{body}]=]}}' for query, body in requests]
        table = workdir / "requests.lua"
        table.write_text("return {" + ",\n".join(rows) + "}\n", encoding="utf-8")
        script = workdir / "callbacks.lua"
        script.write_text(WRK_SCRIPT % (table, WRK_THREADS), encoding="utf-8")
        args += ["-s", str(script)]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)  # noqa: S603
    return parse_wrk(done.stdout)


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def parse_wrk(out: str) -> dict[str, float]:
    result = {"errors": 0.0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in {"50%", "99%"}:
            result["p" + parts[0][:-1]] = _ms(parts[1])
        elif line.startswith("Requests/sec:"):
            result["rate"] = float(parts[1])
        elif "requests in" in line:
            result["requests"] = float(parts[0])
        elif "Non-2xx" in line:
            result["errors"] += float(parts[-1])
        elif line.strip().startswith("Socket errors"):
            result["errors"] += sum(float(p.strip(",")) for p in parts if p.strip(",").isdigit())
    return result


def drain_and_measure(expected_min: int, timeout: float = 900) -> dict[str, float]:
    from siyu.wecom.models import CallbackInbox, InboxStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not CallbackInbox.unscoped.filter(status=InboxStatus.PENDING).exists():
            break
        time.sleep(1)
    rows = list(
        CallbackInbox.unscoped.filter(status=InboxStatus.DONE).values_list(
            "received_at", "processed_at"
        )
    )
    lags = [(p - r).total_seconds() for r, p in rows if p]
    done = sorted(p for _, p in rows if p)
    return {
        "processed": float(len(rows)),
        "throughput": len(rows) / max((done[-1] - done[0]).total_seconds(), 1e-9),
        "p50": statistics.median(lags),
        "p99": percentile(lags, 99),
    }


def paced_run(url: str, requests: list[tuple[str, str]], rate: float, seconds: float) -> dict:
    """Send at a fixed rate (open loop) and measure received -> processed for those callbacks."""
    from siyu.wecom.models import CallbackInbox, InboxStatus

    first_id = (CallbackInbox.unscoped.order_by("-pk").values_list("pk", flat=True).first()) or 0
    count = min(len(requests), int(rate * seconds))
    start = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for i, (query, body) in enumerate(requests[:count]):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.post(f"{url}?{query}", content=body, headers={"Content-Type": "text/xml"})
    rows = CallbackInbox.unscoped.filter(pk__gt=first_id)
    deadline = time.monotonic() + 300
    while rows.filter(status=InboxStatus.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    lags = [
        (p - r).total_seconds()
        for r, p in rows.filter(status=InboxStatus.DONE).values_list("received_at", "processed_at")
        if p
    ]
    return {
        "processed": float(len(lags)),
        "p50": statistics.median(lags),
        "p99": percentile(lags, 99),
    }


def stored_counts() -> dict[str, int]:
    """What the inbox holds: every accepted callback must be a row (the prepared ones are
    distinct, so duplicates mean the load generator repeated itself)."""
    from django.db.models import Count, Sum

    from siyu.wecom.models import CallbackInbox

    counts = CallbackInbox.unscoped.aggregate(rows=Count("pk"), duplicates=Sum("duplicates"))
    return {"rows": counts["rows"], "duplicates": counts["duplicates"] or 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="duration of each load run")
    parser.add_argument("--count", type=int, default=30000, help="distinct callbacks to prepare")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument(
        "--pace-share",
        type=float,
        default=0.5,
        help="paced run's rate as a share of the measured processing throughput",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/siyu_bench"
        ),
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")

    load_before = f"{os.getloadavg()[0]:.2f}"
    workdir = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    env = fresh_siyu(workdir, args.database_url, args.broker_url)
    python = sys.executable
    import redis
    from django.conf import settings

    from siyu.core.services import tenant_create
    from siyu.sandbox.client import SandboxControl
    from siyu.sandbox.httpd import Sandbox

    # The WeCom the workers talk to (profile enrichment after each add): the sandbox, on loopback.
    sandbox = Sandbox()
    sandbox.start()
    SandboxControl(sandbox.base_url).create_corp(
        CORP, "bench-secret", callback_token=TOKEN, callback_aes_key=AES_KEY
    )
    tenant_create(
        slug="bench",
        name="Bench",
        corp_id=CORP,
        callback_token=TOKEN,
        callback_aes_key=AES_KEY,
        contact_secret="bench-secret",  # noqa: S106
        wecom_base_url=sandbox.api_base,
    )
    redis.Redis.from_url(args.broker_url).flushdb()
    progress("preparing callbacks")
    requests = build_requests(args.count, int(time.time()))

    port = free_port()
    web = subprocess.Popen(  # noqa: S603
        [python, "-m", "gunicorn", "siyu.config.wsgi", "-w", str(args.web_workers),
         "-k", "gthread", "--threads", str(args.web_threads), "--keep-alive", "5",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    queues = ",".join(settings.SIYU_QUEUES)
    worker_cmd = [python, "-m", "celery", "-A", "siyu.config", "worker", "-c", "2",
                  "--pool", "prefork", "-l", "ERROR", "-Q", queues]  # fmt: skip
    worker: subprocess.Popen[bytes] | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz")
        progress("baseline: /healthz")
        baseline = run_wrk(base + "/healthz", None, connections=args.connections,
                           seconds=args.seconds, workdir=workdir)  # fmt: skip
        # Ingest alone first: the receiver's own capacity, not shared with processing.
        progress("callbacks under load (workers stopped: ingest alone)")
        accept = run_wrk(f"{base}/wecom/callback/bench/", requests, connections=args.connections,
                         seconds=args.seconds, workdir=workdir)  # fmt: skip
        stored = stored_counts()
        progress("starting the workers and draining the backlog")
        worker = subprocess.Popen(worker_cmd, env=env, cwd=ROOT)  # noqa: S603
        drain = drain_and_measure(int(accept["requests"]))
        # End to end at a sustainable pace: received -> processed latency without a backlog.
        rate = max(1.0, round(drain["throughput"] * args.pace_share))
        progress(f"paced run at {rate:.0f}/s for {args.seconds:.0f} s (workers running)")
        fresh = build_requests(int(rate * args.seconds), int(time.time()))
        paced = paced_run(f"{base}/wecom/callback/bench/", fresh, rate, args.seconds)
    finally:
        procs = [p for p in (web, worker) if p is not None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"machine: {os.cpu_count()} cores, load average {load_before} before / "
        f"{os.getloadavg()[0]:.2f} after; PostgreSQL + Redis + sandbox on loopback; gunicorn "
        f"gthread {args.web_workers} workers x {args.web_threads} threads; wrk {args.connections} "
        f"connections, {args.seconds:.0f} s per run"
    )
    print("| measure | value |\n|---|---|")
    print(
        f"| callbacks accepted into the inbox | {accept['rate']:.0f}/s "
        f"({accept['requests']:.0f} requests, {accept['errors']:.0f} errors; inbox: "
        f"{stored['rows']} rows, {stored['duplicates']} duplicates) |"
    )
    print(f"| accept latency p50 / p99 | {accept['p50']:.1f} ms / {accept['p99']:.1f} ms |")
    print(
        f"| baseline /healthz (same load, same run) | {baseline['rate']:.0f}/s, "
        f"p50 {baseline['p50']:.1f} ms / p99 {baseline['p99']:.1f} ms |"
    )
    print(f"| callback rate / healthz rate | {accept['rate'] / baseline['rate']:.2f} |")
    print(
        f"| processing (2 worker processes draining the backlog) | {drain['processed']:.0f} "
        f"at {drain['throughput']:.0f}/s |"
    )
    print(
        f"| end to end at {rate:.0f}/s (received -> processed) | p50 {paced['p50'] * 1000:.0f} ms"
        f" / p99 {paced['p99'] * 1000:.0f} ms ({paced['processed']:.0f} callbacks) |"
    )


if __name__ == "__main__":
    main()
