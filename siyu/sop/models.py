"""SOPs (customer and group journeys): a trigger enrols, steps run in order, a goal exits.

An ``Enrollment`` is one subject (a customer or a group chat) travelling through one SOP; its
``step`` is the next step to run at ``next_due_at``. A ``StepRun`` row is written in the same
transaction as the step's actions, and is unique per (enrollment, step): a step runs once per
enrolment whatever retries or concurrent dispatchers do.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class SopKind(models.TextChoices):
    CUSTOMER = "customer", _("客户 SOP")
    GROUP = "group", _("群 SOP")


class SopStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    ACTIVE = "active", _("运行中")
    PAUSED = "paused", _("已暂停")


class TriggerKind(models.TextChoices):
    EVENT = "event", _("事件触发")
    ADDED_DAYS = "added_days", _("添加后第 N 天")
    DATE = "date", _("指定时间")
    WEEKLY = "weekly", _("每周")
    SILENCE = "silence", _("沉默 N 天")


TIME_TRIGGERS = (TriggerKind.ADDED_DAYS, TriggerKind.DATE, TriggerKind.WEEKLY, TriggerKind.SILENCE)


class Reentry(models.TextChoices):
    ONCE = "once", _("只进入一次")
    AFTER_COMPLETION = "after_completion", _("完成后可再次进入")


class Sop(TenantModel):
    name = models.CharField(_("名称"), max_length=64)
    kind = models.CharField(max_length=16, choices=SopKind.choices, default=SopKind.CUSTOMER)
    status = models.CharField(max_length=16, choices=SopStatus.choices, default=SopStatus.DRAFT)
    trigger_kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    # The event type an event trigger listens to (its own column: the subscriber asks it on
    # every event written); "" for time triggers.
    trigger_event = models.CharField(max_length=64, blank=True, default="")
    # Validated by the services: conditions / days / at / weekday + time.
    trigger = models.JSONField(default=dict, blank=True)
    audience = models.TextField(_("目标人群"), blank=True, default="")  # a segment expression
    goal_event = models.CharField(_("目标事件"), max_length=64, blank=True, default="")
    reentry = models.CharField(max_length=20, choices=Reentry.choices, default=Reentry.ONCE)
    reentry_interval_hours = models.PositiveIntegerField(default=0)
    # The scheduler's high-water mark for time triggers: how far it has enrolled.
    cursor_at = models.DateTimeField(null=True, blank=True)
    cursor_id = models.BigIntegerField(default=0)
    cycle_key = models.CharField(max_length=32, blank=True, default="")
    cycle_done = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        "accounts.StaffMember", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "trigger_event"], name="sop_trigger"),
            models.Index(fields=["tenant", "status", "goal_event"], name="sop_goal"),
            models.Index(fields=["status", "trigger_kind"], name="sop_schedule"),
        ]

    def __str__(self) -> str:
        return self.name


class ElseAction(models.TextChoices):
    SKIP = "skip", _("跳过本步")
    GOTO = "goto", _("跳到第 N 步")
    EXIT = "exit", _("结束旅程")


class SopStep(TenantModel):
    sop = models.ForeignKey(Sop, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()  # 1..n
    # Minutes after the previous step ran (after enrolment for the first step).
    delay_minutes = models.PositiveIntegerField(default=0)
    condition = models.TextField(blank=True, default="")  # a segment expression
    else_action = models.CharField(
        max_length=8, choices=ElseAction.choices, default=ElseAction.SKIP
    )
    else_goto = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["order"]
        constraints = [models.UniqueConstraint(fields=["sop", "order"], name="sop_step_order")]

    def __str__(self) -> str:
        return f"{self.sop_id}#{self.order}"


class ActionType(models.TextChoices):
    TASK = "task", _("员工任务")
    MASS_SEND = "masssend", _("群发任务")
    TAG_ADD = "tag_add", _("打标签")
    TAG_REMOVE = "tag_remove", _("移除标签")
    STAGE = "stage", _("变更阶段")
    NOTIFY = "notify", _("提醒员工")
    WEBHOOK = "webhook", _("外发 Webhook")


class SopAction(TenantModel):
    step = models.ForeignKey(SopStep, on_delete=models.CASCADE, related_name="actions")
    order = models.PositiveSmallIntegerField(default=0)
    type = models.CharField(max_length=16, choices=ActionType.choices)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["order", "pk"]

    def __str__(self) -> str:
        return f"{self.type}@{self.step_id}"

    @property
    def summary(self) -> str:
        """The action's main text for lists: a title, a message, a stage or tag ids."""
        config = self.config
        if "tag_ids" in config:
            return ",".join(str(i) for i in config["tag_ids"])
        return str(config.get("title") or config.get("text") or config.get("stage") or "")


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", _("进行中")
    COMPLETED = "completed", _("已完成")
    EXITED = "exited", _("已退出")
    FAILED = "failed", _("失败")


_ACTIVE = Q(status="active")


class Enrollment(TenantModel):
    sop = models.ForeignKey(Sop, on_delete=models.CASCADE, related_name="enrollments")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group_chat = models.ForeignKey(
        "groupchats.GroupChat",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    # What enrolled the subject ("once", an event id, a weekly cycle): unique per subject, so
    # a re-run trigger never enrols twice for the same cause.
    key = models.CharField(max_length=64)
    step = models.ForeignKey(
        SopStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    next_due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    converted = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    enrolled_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sop", "customer", "key"],
                condition=Q(customer__isnull=False),
                name="enrollment_customer_key",
            ),
            models.UniqueConstraint(
                fields=["sop", "group_chat", "key"],
                condition=Q(group_chat__isnull=False),
                name="enrollment_group_key",
            ),
            models.UniqueConstraint(
                fields=["sop", "customer"],
                condition=Q(customer__isnull=False) & _ACTIVE,
                name="enrollment_customer_active",
            ),
            models.UniqueConstraint(
                fields=["sop", "group_chat"],
                condition=Q(group_chat__isnull=False) & _ACTIVE,
                name="enrollment_group_active",
            ),
            models.CheckConstraint(
                condition=Q(customer__isnull=True) ^ Q(group_chat__isnull=True),
                name="enrollment_one_subject",
            ),
        ]
        indexes = [
            # The dispatcher's claim: only active rows, oldest due first.
            models.Index(fields=["next_due_at"], condition=_ACTIVE, name="enrollment_due"),
            models.Index(fields=["tenant", "customer", "status"], name="enrollment_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.sop_id}:{self.customer_id or self.group_chat_id}"


class StepOutcome(models.TextChoices):
    DONE = "done", _("已执行")
    SKIPPED = "skipped", _("条件不满足，跳过")
    BRANCHED = "branched", _("条件不满足，跳转")
    EXITED = "exited", _("条件不满足，结束")


class StepRun(TenantModel):
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="runs")
    step = models.ForeignKey(SopStep, on_delete=models.CASCADE, related_name="runs")
    outcome = models.CharField(max_length=16, choices=StepOutcome.choices)
    detail = models.JSONField(default=dict, blank=True)  # per action: what happened
    due_at = models.DateTimeField()
    ran_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["enrollment", "step"], name="step_run_once")]

    def __str__(self) -> str:
        return f"{self.enrollment_id}@{self.step_id}"
