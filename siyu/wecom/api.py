from datetime import datetime

from django.db import transaction
from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from siyu.accounts.permissions import Action, require
from siyu.api.auth import actor
from siyu.api.schemas import StrictIn
from siyu.wecom import services

router = Router(tags=["wecom"])


class SettingsOut(Schema):
    corp_id: str
    agent_id: str
    wecom_base_url: str
    callback_url: str
    callback_token: str
    callback_aes_key: str
    contact_secret_set: bool
    app_secret_set: bool
    wechat_appid: str
    wechat_secret_set: bool
    wechat_oauth_url: str
    wechat_api_base_url: str


class SettingsIn(StrictIn):
    corp_id: str | None = Field(None, min_length=1, max_length=64)
    agent_id: str | None = Field(None, max_length=32)
    wecom_base_url: str | None = Field(None, max_length=200)
    contact_secret: str | None = Field(None, min_length=1, max_length=128)
    app_secret: str | None = Field(None, min_length=1, max_length=128)
    wechat_appid: str | None = Field(None, max_length=32, description="official account AppID")
    wechat_secret: str | None = Field(None, min_length=1, max_length=128)
    wechat_oauth_url: str | None = Field(None, max_length=200)
    wechat_api_base_url: str | None = Field(None, max_length=200)


class CheckOut(Schema):
    ok: bool
    errcode: int
    message: str


class ReconcileOut(Schema):
    queued_at: datetime


@router.get("/settings", response=SettingsOut)
def get_settings(request: HttpRequest) -> object:
    return services.wecom_settings(actor=actor(request))


@router.patch("/settings", response=SettingsOut)
def update_settings(request: HttpRequest, payload: SettingsIn) -> object:
    staff = actor(request)
    services.wecom_settings_update(actor=staff, **payload.model_dump(exclude_unset=True))
    staff.tenant.refresh_from_db()
    return services.wecom_settings(actor=staff)


@router.post("/check", response=CheckOut)
def check_connection(request: HttpRequest) -> object:
    return services.wecom_connection_check(actor=actor(request))


@router.post("/reconcile", response={202: ReconcileOut})
def reconcile(request: HttpRequest) -> Status[object]:
    """Queue a full sync that heals what callbacks missed; see /events/reconciliations."""
    from django.utils import timezone

    from siyu.wecom.tasks import reconcile_tenant

    staff = require(actor(request), Action.SETTINGS_MANAGE)
    tenant_id = staff.tenant_id
    transaction.on_commit(lambda: reconcile_tenant.delay(tenant_id))
    return Status(202, {"queued_at": timezone.now()})
