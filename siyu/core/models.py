"""Tenants and the tenant-owned base model. The event log lives in ``siyu.core.events``."""

import secrets
import string
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.fields import EncryptedTextField
from siyu.core.tenancy import current_tenant_or_none, get_current_tenant

WECOM_API_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
WECHAT_OAUTH_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
WECHAT_API_BASE_URL = "https://api.weixin.qq.com/"


def new_rules_version() -> int:
    # Random, not 0: a process caches by (tenant id, version), and SQLite reuses the id of a
    # deleted last row, so a new tenant must not start where an old one's cache left off.
    return secrets.randbits(48)


def new_callback_token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def new_encoding_aes_key() -> str:
    # WeCom's EncodingAESKey: 43 characters of [A-Za-z0-9], base64 of 32 random bytes.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(43))


class Tenant(models.Model):
    """One company = one WeCom corp. The root every business row hangs from."""

    slug = models.SlugField(_("标识"), max_length=50, unique=True)
    name = models.CharField(_("公司名称"), max_length=100)
    corp_id = models.CharField(_("企业ID"), max_length=64, unique=True)
    contact_secret = EncryptedTextField(_("客户联系 Secret"), blank=True, default="")
    app_secret = EncryptedTextField(_("自建应用 Secret"), blank=True, default="")
    agent_id = models.CharField(_("自建应用 AgentId"), max_length=32, blank=True, default="")
    callback_token = EncryptedTextField(_("回调 Token"), default=new_callback_token)
    callback_aes_key = EncryptedTextField(_("回调 EncodingAESKey"), default=new_encoding_aes_key)
    wecom_base_url = models.URLField(_("企业微信 API 地址"), default=WECOM_API_BASE_URL)
    # The official account whose web OAuth identifies visitors of H5 pages (openid + unionid).
    wechat_appid = models.CharField(_("公众号 AppID"), max_length=32, blank=True, default="")
    wechat_secret = EncryptedTextField(_("公众号 AppSecret"), blank=True, default="")
    wechat_oauth_url = models.URLField(_("微信网页授权地址"), default=WECHAT_OAUTH_URL)
    wechat_api_base_url = models.URLField(_("微信 API 地址"), default=WECHAT_API_BASE_URL)
    is_active = models.BooleanField(_("启用"), default=True)
    # Bumped whenever a rule that decides which events a subscriber gets changes (see
    # core.events.watched_event_types); never saved through the model, only updated.
    rules_version = models.PositiveBigIntegerField(default=new_rules_version, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("租户")
        verbose_name_plural = _("租户")

    def __str__(self) -> str:
        return self.name


class TenantManager(models.Manager):
    """Scopes every query to the tenant in context and fails closed when there is none."""

    def get_queryset(self) -> models.QuerySet:
        tenant = get_current_tenant()
        return super().get_queryset().filter(tenant_id=tenant.pk)


class TenantModel(models.Model):
    """Base for every business row. ``objects`` is scoped; ``unscoped`` is the grep-able exit
    for the few places (migrations, cross-tenant sweeps, the callback router) that need it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", editable=False)

    objects = TenantManager()
    unscoped = models.Manager()  # noqa: DJ012 (a manager, not a field; objects stays default)

    class Meta:
        abstract = True
        base_manager_name = "unscoped"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.tenant_id is None:
            self.tenant = get_current_tenant()
        else:
            current = current_tenant_or_none()
            if current is not None and current.pk != self.tenant_id:
                raise PermissionError("refusing to save a row of another tenant")
        super().save(*args, **kwargs)


class Event(TenantModel):
    """One fact about a customer (or the tenant), appended in the transaction that caused it.

    Rows are never updated or deleted by application code; subscribers react to them through
    ``EventDelivery`` rows written in the same transaction (the transactional outbox).
    """

    customer_id = models.BigIntegerField(null=True, blank=True)
    type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=32)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="event_unique_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "customer_id", "-occurred_at"], name="event_customer"),
            models.Index(fields=["tenant", "type", "-occurred_at"], name="event_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type}#{self.pk}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("待处理")
    DONE = "done", _("已完成")
    DEAD = "dead", _("死信")


class EventDelivery(TenantModel):
    """One subscriber's duty towards one event: done exactly once, or parked as a dead letter."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.CharField(max_length=100)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "subscriber"], name="delivery_once")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.subscriber}:{self.event_id}"
