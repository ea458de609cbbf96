"""The Celery application. Workers start with ``siyu worker`` (or ``celery -A siyu.config``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")

app = Celery("siyu")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
