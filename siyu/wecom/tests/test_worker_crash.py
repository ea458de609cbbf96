"""Killing the worker mid-stream loses nothing and applies nothing twice.

Real processes: callbacks are stored and queued on Redis, a Celery worker process consumes them,
and is killed with SIGKILL part-way. A new worker and the inbox sweep finish the job. (Needs
Redis; CI always has it.)
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from siyu.core.models import Event
from siyu.core.services import tenant_create
from siyu.core.tenancy import tenant_context
from siyu.customers.models import StaffRelation
from siyu.testing.stories import OFFLINE_WECOM
from siyu.wecom.callback.inbox import inbox_store, inbox_sweep
from siyu.wecom.models import CallbackInbox, InboxStatus
from siyu.wecom.tests.builders import event_data, event_xml

CALLBACKS = 1500
REDIS_URL = (
    os.environ.get("SIYU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/13"
)


def _database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def broker() -> Iterator[Celery]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
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
    app.conf.update(broker_url=REDIS_URL, broker_transport_options={})
    app.autodiscover_tasks(["siyu.core", "siyu.webhooks", "siyu.wecom"], force=True)
    try:
        yield app
    finally:
        main_app.set_current()
        client.flushdb()


def _start_worker(tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "siyu.config.settings",
        "SIYU_ENV": "test",
        "SIYU_VAR_DIR": str(tmp_path),
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "siyu.config",
            "worker",
            "-c",
            "2",
            "--pool",
            "prefork",
            "-l",
            "WARNING",
            "-Q",
            ",".join(settings.SIYU_QUEUES),  # callbacks have a queue of their own
        ],
        env=env,
        start_new_session=True,  # its own process group, so SIGKILL takes the pool children too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _done() -> int:
    return CallbackInbox.unscoped.filter(status=InboxStatus.DONE).count()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    broker: Celery, tmp_path: Path
) -> None:
    tenant = tenant_create(
        slug="crash", name="Crash", corp_id="ww_crash", wecom_base_url=OFFLINE_WECOM
    )
    base = 1_700_000_000
    for n in range(CALLBACKS):
        fields = {
            "UserID": f"staff{n % 7}",
            "ExternalUserID": f"wmcrash{n:05d}",
            "WelcomeCode": f"W{n}",
        }
        message = event_xml(
            corp_id=tenant.corp_id,
            event="change_external_contact",
            change_type="add_external_contact",
            create_time=base + n // 20,
            **fields,
        )
        data = event_data(
            event="change_external_contact",
            change_type="add_external_contact",
            create_time=base + n // 20,
            **fields,
        )
        assert inbox_store(tenant=tenant, message=message, data=data) is not None
    worker = _start_worker(tmp_path)
    deadline = time.monotonic() + 120
    while _done() < CALLBACKS // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_at = _done()
    assert 0 < killed_at < CALLBACKS, "the worker should die mid-stream"

    replacement = _start_worker(tmp_path)
    try:
        # Jobs the dead worker had taken are not acknowledged; the sweep queues what is still
        # pending (running a callback twice is harmless: the claim decides).
        deadline = time.monotonic() + 300
        while _done() < CALLBACKS and time.monotonic() < deadline:
            inbox_sweep(grace_seconds=0)
            time.sleep(1)
    finally:
        os.killpg(replacement.pid, signal.SIGTERM)
        replacement.wait(timeout=60)

    with tenant_context(tenant):
        assert _done() == CALLBACKS
        assert set(CallbackInbox.objects.values_list("attempts", flat=True)) == {1}
        assert StaffRelation.objects.count() == CALLBACKS
        added = Event.objects.filter(type="customer.added")
        assert added.count() == CALLBACKS
        assert added.values("idempotency_key").distinct().count() == CALLBACKS
