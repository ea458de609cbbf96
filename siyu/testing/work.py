"""What the workers do, run in the test's own thread: tests (and the browser journeys) drive
each step themselves instead of waiting on a queue, so every outcome is asserted in order."""

from typing import Any

from django.conf import settings

from siyu.channels.models import ChannelAdd, WelcomeSend, WelcomeStatus
from siyu.channels.tasks import follow_up_add, send_welcome
from siyu.config.celery import app
from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.tags.models import PushStatus, TagMarkPush
from siyu.tags.services import tag_mark_push_send
from siyu.testing.stories import Company
from siyu.wecom.callback.inbox import inbox_process
from siyu.wecom.models import CallbackInbox, InboxStatus


def run_pending_work(company: Company) -> dict[str, list[str]]:
    """What the workers do after callbacks arrive, in lane order: callbacks, event deliveries
    (the channel add's delivery sends the welcome message after its commit), follow-ups, tag
    marks. Returns each step's outcomes and every welcome send's status."""
    tenant = company.tenant
    with tenant_context(tenant):
        inbox = list(
            CallbackInbox.objects.filter(status=InboxStatus.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    callbacks = [inbox_process(inbox_id=pk) for pk in inbox]
    with tenant_context(tenant):
        deliveries = list(
            EventDelivery.objects.filter(status=DeliveryStatus.PENDING).values_list("pk", flat=True)
        )
    for pk in deliveries:
        event_delivery_run(delivery_id=pk)
    with tenant_context(tenant):
        sends = list(
            WelcomeSend.objects.filter(status=WelcomeStatus.PENDING).values_list("pk", flat=True)
        )
    retried = [send_welcome(tenant.pk, pk) for pk in sends]  # where no commit sent them
    with tenant_context(tenant):
        welcomes = list(WelcomeSend.objects.order_by("pk").values_list("status", flat=True))
    with tenant_context(tenant):
        adds = list(ChannelAdd.objects.order_by("pk").values_list("pk", flat=True))
    for pk in adds:
        follow_up_add(tenant.pk, pk)
    with tenant_context(tenant):
        pushes = list(
            TagMarkPush.objects.filter(status=PushStatus.PENDING).values_list("pk", flat=True)
        )
    marks = [tag_mark_push_send(push_id=pk) for pk in pushes]
    return {"callbacks": callbacks, "retried": retried, "welcomes": welcomes, "marks": marks}


def run_queued_tasks(*, rounds: int = 20) -> list[str]:
    """Be the worker: take every job Siyu queued on the test broker (``memory://``: this
    process's queues, filled by the test thread and the live server alike), from every queue
    the embedded worker consumes, and run it here, until the queues stay empty (jobs queue
    jobs). Returns the names of the tasks run, in order."""
    ran: list[str] = []
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # kombu's virtual channel (memory://)
        for _ in range(rounds):
            before = len(ran)
            for queue in settings.SIYU_QUEUES:
                while (message := channel.basic_get(queue, no_ack=True)) is not None:
                    name = message.headers["task"]
                    args, kwargs, _options = message.decode()
                    app.tasks[name].apply(args=args, kwargs=kwargs, throw=True)
                    ran.append(name)
            if len(ran) == before:
                return ran
    raise AssertionError(f"the queues never emptied after {rounds} rounds: {ran[-20:]}")


def queued_tasks_purge() -> int:
    """Drop whatever earlier tests left on the test broker's queues; returns how many."""
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        return sum(int(channel.queue_purge(queue) or 0) for queue in settings.SIYU_QUEUES)
