"""State of the WeCom gateway: shared access tokens, rate windows, the callback inbox, and the
record of reconciliations."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.fields import EncryptedTextField
from siyu.core.models import TenantModel


class AccessToken(models.Model):
    """WeCom tokens are per (corp, secret) and gettoken is rate-limited, so every process shares
    one cached token through this table instead of fetching its own."""

    corp_id = models.CharField(max_length=64)
    secret_fingerprint = models.CharField(max_length=64)
    token = EncryptedTextField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["corp_id", "secret_fingerprint"], name="token_once")
        ]

    def __str__(self) -> str:
        return f"{self.corp_id}:{self.secret_fingerprint[:8]}"


class RateWindow(TenantModel):
    """Calls made to one API in one window (minute or hour), counted atomically."""

    api = models.CharField(max_length=80)
    window = models.CharField(max_length=8)  # "minute" | "hour"
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "api", "window", "window_start"], name="rate_window_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.api}@{self.window_start}:{self.count}"


class InboxStatus(models.TextChoices):
    PENDING = "pending", _("待处理")
    DONE = "done", _("已处理")
    DEAD = "dead", _("死信")


class CallbackInbox(TenantModel):
    """Every verified callback, stored before WeCom gets its 200. The dedupe key is the SHA-1 of
    the decrypted message: WeCom's retries are byte-identical, while two distinct events in the
    same second differ in their ids or welcome codes."""

    dedupe_key = models.CharField(max_length=40)
    event = models.CharField(max_length=64)
    change_type = models.CharField(max_length=64, blank=True, default="")
    create_time = models.DateTimeField()
    message = models.TextField()
    data = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=InboxStatus.choices, default=InboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    duplicates = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="inbox_dedupe")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="inbox_due"),
            models.Index(fields=["tenant", "-received_at"], name="inbox_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type}#{self.pk}"


class ReconciliationRun(TenantModel):
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, default="running")  # running | done | failed
    healed = models.JSONField(default=dict)  # kind → count
    details = models.JSONField(default=list)  # a sample of what was healed, for the report
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"reconciliation #{self.pk} {self.status}"
