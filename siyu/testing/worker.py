"""Real Celery worker processes on Redis for crash tests: start one against the test database,
kill it with SIGKILL mid-run, start another. (Needs Redis; CI always has it.)"""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

_REDIS_BASE = os.environ.get("SIYU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0]
# `make test` runs the SQLite and PostgreSQL suites at the same time: each takes its own Redis
# databases, so neither flushes nor consumes the other's queues.
_DB_OFFSET = {"sqlite": 0, "postgresql": 3}
CORE_WORKER_DB, WECOM_CRASH_DB, MASSSEND_CRASH_DB = 4, 5, 6


def redis_url(db: int) -> str:
    """The Redis database ``db`` (one of the constants above) of this suite's database vendor."""
    return f"{_REDIS_BASE}/{db + _DB_OFFSET[connection.vendor]}"


def database_url() -> str:
    """The test database as a URL a worker process can open."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def redis_broker(packages: list[str], *, db: int) -> Iterator[Celery]:
    """A Celery app on Redis database ``db`` (flushed; one per crash test, so two can run at
    once), current while the block runs, with the tasks of ``packages`` registered; skips the
    test without Redis (fails in CI)."""
    url = redis_url(db)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    client.flushdb()
    from siyu.config.celery import app as main_app

    app = Celery("siyu-crash-test", set_as_current=True)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=url, broker_transport_options={})
    app.autodiscover_tasks(packages, force=True)
    try:
        yield app
    finally:
        # Celery's test worker makes its app every thread's default, not just current: a live
        # server thread would otherwise queue Siyu's jobs on this (flushed) broker.
        main_app.set_current()
        main_app.set_default()
        client.flushdb()


def start_worker(
    tmp_path: Path, broker: Celery, *, concurrency: int = 2, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A worker process on every queue of ``broker``, in its own process group (see ``kill``);
    its log goes to ``tmp_path/worker.log``."""
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "siyu.config",
            "worker",
            "-n",
            f"crash-{uuid.uuid4().hex[:8]}@%h",
            "-c",
            str(concurrency),
            "--pool",
            "prefork",
            "-l",
            "WARNING",
            "-Q",
            ",".join(settings.SIYU_QUEUES),
        ],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "siyu.config.settings",
            "SIYU_ENV": "test",
            "SIYU_VAR_DIR": str(tmp_path),
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": str(broker.conf.broker_url),
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        },
        start_new_session=True,  # its own process group, so SIGKILL takes the pool children too
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("ab"),  # read it when a crash test fails
    )


def kill(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its pool children: no shutdown, no acknowledgements."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def stop(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
