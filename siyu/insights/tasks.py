"""Nightly refit and rescore of every tenant (settings.CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.insights import services

logger = logging.getLogger(__name__)


@shared_task(name="siyu.insights.refresh_scores")
def refresh_scores() -> int:
    """Refit and rescore each active tenant; one tenant's failure does not stop the others."""
    done = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenant_context(tenant):
            try:
                services.scores_refresh()
                done += 1
            except Exception:
                logger.exception("insights rescore failed for tenant %s", tenant.slug)
    return done
