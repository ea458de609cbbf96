"""The real worker path: events enqueued on commit travel through Redis to a Celery worker.

Needs Redis (the server of SIYU_TEST_REDIS_URL, default redis://127.0.0.1:6379). CI always has
it and fails here if it is missing; on a laptop without Redis these tests are skipped.
"""

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.utils import timezone

from siyu.core import events as registry
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import tenant_create
from siyu.core.tasks import sweep_event_deliveries
from siyu.core.tenancy import tenant_context
from siyu.testing.worker import CORE_WORKER_DB, redis_url

WORKER_TYPE = registry.event_type("test.worker", "测试后台任务", webhook=False)
ECHO_TYPE = registry.event_type("test.worker_echo", "测试后台回声", webhook=False)


@registry.subscriber(WORKER_TYPE, name="test.worker_echo")
def _echo(event: Event) -> None:
    Event.objects.create(
        tenant_id=event.tenant_id,
        type=ECHO_TYPE,
        source="system",
        occurred_at=timezone.now(),
        payload={"echo_of": event.pk},
    )


@pytest.fixture
def redis_worker() -> Iterator[Celery]:
    url = redis_url(CORE_WORKER_DB)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI for the worker test: {exc}")
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    client.flushdb()
    from siyu.config.celery import app as main_app

    app = Celery("siyu-worker-test", set_as_current=True)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=url, broker_transport_options={}, task_always_eager=False)
    app.autodiscover_tasks(["siyu.core", "siyu.webhooks"], force=True)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield app
    finally:
        # Celery's test worker makes its app every thread's default, not just current: a live
        # server thread would otherwise queue Siyu's jobs on this (flushed) broker.
        main_app.set_current()
        main_app.set_default()
        client.flushdb()


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_in_a_request_is_processed_by_the_worker(redis_worker: Celery) -> None:
    from siyu.core.services import event_record

    tenant = tenant_create(slug="w", name="W", corp_id="ww_worker")
    with tenant_context(tenant):
        with transaction.atomic():
            event = event_record(type=WORKER_TYPE, source="api")
        assert _wait_for(
            lambda: Event.objects.filter(type=ECHO_TYPE, payload__echo_of=event.pk).exists()
        )
        delivery = EventDelivery.objects.get(event=event)
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.DONE, 1)
        assert Event.objects.filter(type=ECHO_TYPE).count() == 1


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_lost_job_is_recovered_by_the_sweep(redis_worker: Celery, monkeypatch) -> None:
    from siyu.core.services import event_record

    tenant = tenant_create(slug="w2", name="W2", corp_id="ww_worker2")
    with tenant_context(tenant):
        # The broker "loses" the message: nothing is enqueued at commit.
        monkeypatch.setattr("siyu.core.services._enqueue", lambda ids, countdown=0: None)
        event = event_record(type=WORKER_TYPE, source="api")
        monkeypatch.undo()
        EventDelivery.objects.filter(event=event).update(
            next_attempt_at=timezone.now() - timedelta(minutes=5)
        )
        sweep_event_deliveries.delay()
        assert _wait_for(
            lambda: EventDelivery.objects.filter(event=event, status=DeliveryStatus.DONE).exists()
        )
        assert Event.objects.filter(type=ECHO_TYPE, payload__echo_of=event.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_between_tasks_as_conn_max_age_says() -> None:
    # Given the hooks a worker runs around each task: Celery's Django fixup's, and ours
    from celery.fixups.django import DjangoFixup
    from django.db import connection

    from siyu.config.celery import app, close_old_db_connections

    fixup = DjangoFixup(app).worker_fixup  # what a worker installs at start
    task = app.tasks[sweep_event_deliveries.name]
    connection.close()  # a fresh one: the test database's setup may have taken over 60 s
    connection.ensure_connection()
    opened = connection.connection

    # When both run their before/after-task hooks (called directly: the worker tests above
    # leave their own apps' hooks connected to the signals in this process)
    for _ in range(2):
        for hook in (fixup.on_task_prerun, fixup.on_task_postrun, close_old_db_connections):
            hook(sender=task)

    # Then the connection is kept while it is younger than CONN_MAX_AGE (PostgreSQL: 60 s), and
    # closed after each task where the setting says so (SQLite: 0)
    if connection.settings_dict["CONN_MAX_AGE"]:
        assert connection.connection is opened
    else:
        assert connection.connection is None
