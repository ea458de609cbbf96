"""The demo company's history is lived through the sandbox and Siyu's own code paths, and the
live activity keeps adding to it through the sandbox's HTTP API."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from siyu.channels.models import ChannelCode
from siyu.config.celery import app
from siyu.core.models import Event, Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, CustomerIdentity, RelationStatus, StaffRelation
from siyu.demo.replay import LocalStage, Plan, Replay, local_sandbox
from siyu.fission.models import Participant
from siyu.masssend.models import MassSend
from siyu.shop.models import Order, OrderStatus
from siyu.tags.models import CustomerTag
from siyu.workspace.models import StaffTask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager() -> Iterator[None]:
    """Jobs run where they are enqueued, as in the demo command."""
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def _welcomed(sandbox: Any, corpid: str) -> set[str]:
    received = sandbox.world.corps[corpid].received
    return {
        ext
        for ext, items in received.items()
        if any(str(i[1]).startswith("welcome:") for i in items)
    }


def test_half_a_year_is_lived_through_callbacks_services_and_the_cashier(
    eager: None, tmp_path: Path
) -> None:
    plan = Plan(customers=40, days=14, seed=11)
    with local_sandbox(0, tmp_path / "sandbox.json") as sandbox:
        replay = Replay(plan, LocalStage(sandbox), "http://127.0.0.1:8000")
        tally = replay.run(lambda done, total, label: None)
        corpid = replay.corpid

        assert tally.errors == 0, tally.failures
        assert tally.adds >= plan.customers * 0.8
        tenant = Tenant.objects.get(slug="demo")
        with tenant_context(tenant):
            # Every add came as a WeCom callback and made one customer, dated when it happened.
            assert Customer.objects.count() == tally.adds
            added = Event.objects.filter(type="customer.added", source="wecom")
            assert added.count() == tally.adds
            first = added.order_by("occurred_at").first()
            assert first is not None
            assert first.occurred_at < timezone.now() - timedelta(days=plan.days - 3)
            # The welcome lane answered each channel-code add in WeCom, and its tags applied.
            code_adds = Event.objects.filter(
                type="customer.added", payload__state__startswith="ch:"
            ).count()
            assert code_adds >= tally.adds * 0.7
            assert len(_welcomed(sandbox, corpid)) >= code_adds
            assert CustomerTag.objects.filter(source="channel").count() >= code_adds
            assert ChannelCode.objects.count() == 8
            # Deletions happened in WeCom and reached Siyu.
            lost = StaffRelation.objects.exclude(status=RelationStatus.ACTIVE).count()
            assert lost == tally.deletes
            # Customers paid at the sandbox's cashier; the notifications settled the orders.
            paid = Order.objects.filter(status=OrderStatus.PAID).count()
            assert paid == tally.orders > 0
            assert Event.objects.filter(type="content.opened").count() == tally.opens
            # The new-customer SOP gave staff their tasks; a campaign and mass sends ran.
            assert StaffTask.objects.filter(kind="sop").exists()
            assert Participant.objects.count() == tally.participants > 0
            assert MassSend.objects.count() == tally.mass_sends == 3

            # Live activity: acts through the sandbox's HTTP API, callbacks into Siyu.
            before = Customer.objects.count()
        call_command("demo_live", sandbox_url=sandbox.base_url, count=6, interval=0.1, seed=3)
        sandbox.dispatcher.deliver_queued()
        with tenant_context(tenant):
            live = CustomerIdentity.objects.filter(
                kind="unionid", value__startswith="demo-live-"
            ).count()
            assert live >= 1
            assert Customer.objects.count() == before + live


def test_the_calendar_follows_the_seed(tmp_path: Path) -> None:
    def calendar(seed: int) -> list[tuple[float, str]]:
        replay = Replay(Plan(customers=200, days=30, seed=seed), LocalStage.__new__(LocalStage), "")
        replay.start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        replay._schedule()
        return sorted((when, action) for when, _, action, _ in replay._queue)

    assert calendar(5) == calendar(5)
    assert calendar(5) != calendar(6)


def test_bad_sizes_are_refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--customers"):
        call_command("demo_world", customers=3)
    with pytest.raises(CommandError, match="--days"):
        call_command("demo_world", days=1000)
    assert not Tenant.objects.filter(slug="demo").exists()
