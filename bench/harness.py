"""What the benchmarks share: their PostgreSQL database and Django set-up, a fresh Siyu on
PostgreSQL + Redis for the loopback ones, ports, percentiles."""

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


def ensure_database(url: str, *, fresh: bool = False) -> None:
    """Create the benchmark's database if it is missing (``fresh``: drop it first)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    """Django in this process on ``url``, migrated; logs only errors (the progress lines speak)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.test_settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


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
