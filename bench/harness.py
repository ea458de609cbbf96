"""What the loopback benchmarks share: a fresh Siyu on PostgreSQL + Redis, ports, percentiles."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def fresh_siyu(workdir: Path, database_url: str, broker_url: str) -> dict[str, str]:
    """Drop and recreate the benchmark database, migrate it, and set up Django in this process
    with the same settings the child processes get; returns their environment."""
    import psycopg

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "siyu.config.settings",
        "SIYU_ENV": "development",
        "SIYU_VAR_DIR": str(workdir),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "SIYU_CALLBACK_MAX_AGE_SECONDS": "3600",
        "LOG_LEVEL": "ERROR",
    }
    for key in ("DJANGO_SETTINGS_MODULE", "SIYU_ENV", "SIYU_VAR_DIR", "DATABASE_URL"):
        os.environ[key] = env[key]
    os.environ["CELERY_BROKER_URL"] = broker_url
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "-m", "siyu", "migrate", "-v0"], env=env, check=True)  # noqa: S603
    import django

    django.setup()
    return env


def wait_until_up(url: str, tries: int = 100) -> None:
    for _ in range(tries):
        try:
            if httpx.get(url).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")
