"""Import jobs: an uploaded file, its preview, and the run that applies it row by row."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("客户")
    TAGS = "tags", _("标签")


class ImportStatus(models.TextChoices):
    PREVIEWED = "previewed", _("待确认")
    QUEUED = "queued", _("排队中")
    RUNNING = "running", _("导入中")
    DONE = "done", _("已完成")
    FAILED = "failed", _("失败")


class ImportJob(TenantModel):
    """One uploaded file. Rows are applied in file order; ``processed_rows`` is both the progress
    bar and the resume point, advanced in each row's own transaction."""

    kind = models.CharField(_("类型"), max_length=16, choices=ImportKind.choices)
    file_name = models.CharField(_("文件名"), max_length=200)
    # Name in the default storage (var/media in the embedded deployment).
    stored_name = models.CharField(max_length=300)
    file_format = models.CharField(max_length=8)  # csv | xlsx
    encoding = models.CharField(max_length=16, blank=True, default="")
    # Column index → target ("phone", "tags", "field:city", …), detected from the header row.
    columns = models.JSONField(default=dict)
    ignored_columns = models.JSONField(default=list, blank=True)
    # The first rows as they will be imported, and what validation found in the whole file.
    preview = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        _("状态"), max_length=16, choices=ImportStatus.choices, default=ImportStatus.PREVIEWED
    )
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    failure = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="importjob_recent"),
            models.Index(fields=["status", "updated_at"], name="importjob_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.file_name}"

    @property
    def percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == ImportStatus.DONE else 0
        return min(100, self.processed_rows * 100 // self.total_rows)


class ImportRowError(TenantModel):
    """One bad row of a run: what was wrong, where, so the operator can fix and re-upload."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row = models.PositiveIntegerField()  # the spreadsheet's row number (header = 1)
    column = models.CharField(max_length=100, blank=True, default="")
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["row", "id"]
        indexes = [models.Index(fields=["job", "row"], name="importrowerror_job_row")]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.row} {self.message}"
