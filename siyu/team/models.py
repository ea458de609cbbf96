"""Account assets and the team: each WeCom account is a company asset with a lifecycle and a
periodic inventory (盘号); the team is paid and ranked on numbers computed from events.

An account asset is one-to-one with a staff member's WeCom account (``StaffMember``); its
function (IP号 / 成交号 / 会员号 / 代理号) is the member's ``account_kind``, kept where the account
matrix reads it. The holder is the person who physically holds the account (often not the
member on record for functional accounts).
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class AssetStage(models.TextChoices):
    REGISTERED = "registered", _("起号")
    WARMING = "warming", _("养号")
    IN_USE = "in_use", _("用号")
    AUDITED = "audited", _("盘号")
    HANDED_BACK = "handed_back", _("还号")


# The lifecycle's moves; 还号 is reached only through the hand-back (it moves the customers).
STAGE_MOVES: dict[str, frozenset[str]] = {
    AssetStage.REGISTERED: frozenset({AssetStage.WARMING, AssetStage.IN_USE}),
    AssetStage.WARMING: frozenset({AssetStage.IN_USE}),
    AssetStage.IN_USE: frozenset({AssetStage.AUDITED, AssetStage.WARMING}),
    AssetStage.AUDITED: frozenset({AssetStage.IN_USE}),
    AssetStage.HANDED_BACK: frozenset(),
}


class AccountAsset(TenantModel):
    staff = models.OneToOneField(
        "accounts.StaffMember", on_delete=models.CASCADE, related_name="asset"
    )
    stage = models.CharField(
        _("阶段"), max_length=16, choices=AssetStage.choices, default=AssetStage.REGISTERED
    )
    holder = models.CharField(_("持有人"), max_length=64, blank=True, default="")
    note = models.CharField(_("备注"), max_length=300, blank=True, default="")
    stage_changed_at = models.DateTimeField(null=True, blank=True)
    last_audited_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.staff_id}:{self.stage}"


class AssetLog(TenantModel):
    """The asset's history: stage and holder changes, hand-back, inventory results."""

    asset = models.ForeignKey(AccountAsset, on_delete=models.CASCADE, related_name="logs")
    kind = models.CharField(max_length=16)  # stage / holder / inventory / hand_back
    before = models.CharField(max_length=64, blank=True, default="")
    after = models.CharField(max_length=64, blank=True, default="")
    note = models.CharField(max_length=300, blank=True, default="")
    actor = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["asset", "-at"], name="asset_log_recent")]

    def __str__(self) -> str:
        return f"{self.asset_id}:{self.kind}"


class AssetFriendDay(TenantModel):
    """Friend count per account and day (the history the inventory compares against)."""

    asset = models.ForeignKey(AccountAsset, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    friends = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "day"], name="asset_friend_day_once")
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}:{self.day}={self.friends}"


class InventoryRun(TenantModel):
    """One 盘号: a checklist item per account in use, snapshotted when it starts."""

    name = models.CharField(_("名称"), max_length=64)
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class InventoryItem(TenantModel):
    run = models.ForeignKey(InventoryRun, on_delete=models.CASCADE, related_name="items")
    asset = models.ForeignKey(AccountAsset, on_delete=models.CASCADE, related_name="+")
    # Snapshotted at the start: what Siyu knows.
    friends_recorded = models.PositiveIntegerField()
    tagged_share = models.FloatField()  # share of the account's active customers with a tag
    # Filled in by the checker: what they found.
    holder_confirmed = models.BooleanField(null=True)
    friends_counted = models.PositiveIntegerField(null=True)
    data_backed_up = models.BooleanField(null=True)
    note = models.CharField(max_length=300, blank=True, default="")
    checked_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "asset"], name="inventory_item_once"),
            models.CheckConstraint(
                condition=Q(tagged_share__gte=0) & Q(tagged_share__lte=1),
                name="inventory_tagged_share_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.asset_id}"


class CommissionScheme(TenantModel):
    """Progressive commission on a member's GMV in a period, like tax brackets: each tier's
    rate applies to the part of the sales inside the tier. One scheme is active at a time."""

    name = models.CharField(_("名称"), max_length=64)
    # [{"from_fen": 0, "rate_bp": 200}, {"from_fen": 1_000_000, "rate_bp": 300}, …]
    tiers = models.JSONField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(active=True), name="one_active_commission_scheme"
            )
        ]

    def __str__(self) -> str:
        return self.name


class QualityTargets(TenantModel):
    """What a member is expected to do, per the team's rules (质检)."""

    task_on_time_pct = models.PositiveSmallIntegerField(default=90)
    tagged_pct = models.PositiveSmallIntegerField(default=80)
    moments_per_day = models.DecimalField(max_digits=4, decimal_places=1, default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="quality_targets_once")]

    def __str__(self) -> str:
        return f"targets:{self.tenant_id}"
