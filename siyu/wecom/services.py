"""Connecting a tenant to WeCom: credentials, callback settings, a connection check."""

from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput
from siyu.core.models import Tenant
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import WeComError

SECRET_FIELDS = ("contact_secret", "app_secret", "wechat_secret")
URL_FIELDS = ("wecom_base_url", "wechat_oauth_url", "wechat_api_base_url")


def wecom_settings(*, actor: StaffMember) -> dict[str, Any]:
    """What an admin needs to configure WeCom's side: the callback URL, token and key."""
    require(actor, Action.SETTINGS_MANAGE)
    tenant = actor.tenant
    return {
        "corp_id": tenant.corp_id,
        "agent_id": tenant.agent_id,
        "wecom_base_url": tenant.wecom_base_url,
        "callback_url": settings.SITE_URL + reverse("wecom-callback", args=[tenant.slug]),
        "callback_token": tenant.callback_token,
        "callback_aes_key": tenant.callback_aes_key,
        "contact_secret_set": bool(tenant.contact_secret),
        "app_secret_set": bool(tenant.app_secret),
        "wechat_appid": tenant.wechat_appid,
        "wechat_secret_set": bool(tenant.wechat_secret),
        "wechat_oauth_url": tenant.wechat_oauth_url,
        "wechat_api_base_url": tenant.wechat_api_base_url,
    }


@transaction.atomic
def wecom_settings_update(*, actor: StaffMember, **changes: Any) -> Tenant:
    """Change WeCom credentials. Secrets are write-only: the audit log records that they
    changed, never their values."""
    require(actor, Action.SETTINGS_MANAGE)
    allowed = {"corp_id", "agent_id", "wechat_appid", *URL_FIELDS, *SECRET_FIELDS}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(_("未知字段：%(fields)s") % {"fields": ", ".join(sorted(unknown))})
    tenant = Tenant.objects.select_for_update().get(pk=actor.tenant_id)
    for field in URL_FIELDS:
        if field in changes:
            parsed = urlparse(changes[field])
            if parsed.scheme not in {"http", "https"} or not parsed.netloc:
                raise InvalidInput(_("%(field)s 必须是 http(s) 地址") % {"field": field})
    if (
        "corp_id" in changes
        and Tenant.objects.exclude(pk=tenant.pk).filter(corp_id=changes["corp_id"]).exists()
    ):
        raise InvalidInput(_("这个企业ID已被另一个租户使用"))
    for field, value in changes.items():
        setattr(tenant, field, value)
    tenant.full_clean()
    tenant.save()
    audit_record(
        actor=actor,
        action="wecom.settings_changed",
        target=tenant,
        details={k: ("***" if k in SECRET_FIELDS else v) for k, v in changes.items()},
    )
    return tenant


def wecom_connection_check(*, actor: StaffMember) -> dict[str, Any]:
    """Try the credentials: fetch a token and the list of members with customer contact."""
    require(actor, Action.SETTINGS_MANAGE)
    try:
        with WeComClient.for_tenant(actor.tenant, max_retries=0) as client:
            members = client.follow_user_list()
    except WeComError as exc:
        return {"ok": False, "errcode": exc.errcode, "message": exc.errmsg}
    return {
        "ok": True,
        "errcode": 0,
        "message": _("连接成功，%(n)d 名成员开通了客户联系") % {"n": len(members)},
    }
