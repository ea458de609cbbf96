"""Killing the worker mid-stream loses nothing and applies nothing twice.

Real processes: callbacks are stored and queued on Redis, a Celery worker process consumes them,
and is killed with SIGKILL part-way. A new worker and the inbox sweep finish the job. (Needs
Redis; CI always has it.)
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from siyu.core.models import Event
from siyu.core.services import tenant_create
from siyu.core.tenancy import tenant_context
from siyu.customers.models import StaffRelation
from siyu.testing.stories import OFFLINE_WECOM
from siyu.testing.worker import WECOM_CRASH_DB, kill, redis_broker, start_worker, stop
from siyu.wecom.callback.inbox import inbox_store, inbox_sweep
from siyu.wecom.models import CallbackInbox, InboxStatus
from siyu.wecom.tests.builders import event_data, event_xml

CALLBACKS = 1500


@pytest.fixture
def broker() -> Iterator[Celery]:
    with redis_broker(["siyu.core", "siyu.webhooks", "siyu.wecom"], db=WECOM_CRASH_DB) as app:
        yield app


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
    worker = start_worker(tmp_path, broker)
    deadline = time.monotonic() + 120
    while _done() < CALLBACKS // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    kill(worker)
    killed_at = _done()
    assert 0 < killed_at < CALLBACKS, "the worker should die mid-stream"

    replacement = start_worker(tmp_path, broker)
    try:
        # Jobs the dead worker had taken are not acknowledged; the sweep queues what is still
        # pending (running a callback twice is harmless: the claim decides).
        deadline = time.monotonic() + 300
        while _done() < CALLBACKS and time.monotonic() < deadline:
            inbox_sweep(grace_seconds=0)
            time.sleep(1)
    finally:
        stop(replacement)

    with tenant_context(tenant):
        assert _done() == CALLBACKS
        assert set(CallbackInbox.objects.values_list("attempts", flat=True)) == {1}
        assert StaffRelation.objects.count() == CALLBACKS
        added = Event.objects.filter(type="customer.added")
        assert added.count() == CALLBACKS
        assert added.values("idempotency_key").distinct().count() == CALLBACKS
