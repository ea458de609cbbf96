"""Background jobs of the WeCom gateway; thin, they take ids and call services."""

from typing import Any

from celery import shared_task

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.wecom.callback import fastlane, inbox
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import InvalidExternalUser, NotExternalContact, TransientError


@shared_task(name="siyu.wecom.process_callbacks", acks_late=True)
def process_callbacks(inbox_ids: list[int]) -> list[str]:
    """Process stored callbacks in order; each is claimed on its own, so a redelivered job (the
    worker died mid-way) skips what was already done."""
    return [inbox.inbox_process(inbox_id=inbox_id) for inbox_id in inbox_ids]


@shared_task(name="siyu.wecom.welcome_code_arrived", acks_late=True)
def welcome_code_arrived(tenant_id: int, arrival: dict[str, Any]) -> None:
    """The welcome lane's start: runs ahead of the callback's processing (fastlane.py)."""
    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        fastlane.welcome_code_dispatch(fastlane.WelcomeCodeArrived.load(arrival))


@shared_task(name="siyu.wecom.sweep_inbox")
def sweep_inbox() -> int:
    return inbox.inbox_sweep()


@shared_task(
    name="siyu.wecom.enrich_customer",
    autoretry_for=(TransientError,),
    retry_backoff=True,
    max_retries=5,
)
def enrich_customer(tenant_id: int, external_userid: str) -> None:
    """Fill in a new customer's profile, remark and tags after the fast add path."""
    from django.db import transaction
    from django.utils import timezone

    from siyu.wecom.callback.handlers import apply_contact

    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant), WeComClient.for_tenant(tenant) as client:
        try:
            contact = client.external_contact(external_userid)
        except (NotExternalContact, InvalidExternalUser):
            return
        with transaction.atomic():
            apply_contact(contact, at=timezone.now(), key=None)


@shared_task(name="siyu.wecom.reconcile")
def reconcile_tenant(tenant_id: int) -> int:
    from siyu.wecom.sync.services import reconcile

    return reconcile(Tenant.objects.get(pk=tenant_id)).pk


@shared_task(name="siyu.wecom.reconcile_all")
def reconcile_all() -> int:
    """Nightly: one reconciliation job per active tenant with WeCom credentials."""
    ids = [t.pk for t in Tenant.objects.filter(is_active=True) if t.contact_secret]
    for tenant_id in ids:
        reconcile_tenant.delay(tenant_id)
    return len(ids)
