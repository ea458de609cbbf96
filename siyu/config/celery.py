"""The Celery application. Workers start with ``siyu worker`` (or ``celery -A siyu.config``)."""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")

app = Celery("siyu")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless
# told to reuse them: each task then paid a new PostgreSQL backend (about 16 ms under load,
# some 45 queries' worth), and one add runs about ten tasks. Its closing is switched off here
# (the count never comes round) and connections follow Django's own rule instead, as a request
# does: closed when CONN_MAX_AGE has passed or they are unusable (CONN_HEALTH_CHECKS).
app.conf.CELERY_DB_REUSE_MAX = 2**62  # the name Celery's fixup reads
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_db_connections(sender: Task | None = None, **_: Any) -> None:
    """Before and after each task: what Django does around a request (see above)."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # runs inside the caller's transaction (tests): not this task's connection
    from django.db import close_old_connections

    close_old_connections()
