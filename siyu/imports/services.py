"""Imports: upload → preview (nothing written) → confirm → a background run, one row per
transaction, resumable from ``processed_rows``.

Rules an operator can rely on:
- A row goes in whole or not at all; a bad row is listed in the error report and the others
  still go in.
- Rows find their customer by phone, unionid or external_userid, so importing the same file
  twice creates nobody twice. Identifiers of two different customers in one row are an error
  (merging is a decision, not a side effect of a spreadsheet).
- Tags are named as "标签" or "标签组:标签" and must exist: the taxonomy lives in WeCom first
  (a tags import or 标签管理 creates it there), so a row naming an unknown tag is rejected
  rather than inventing a tag WeCom does not have. Import only adds tags, through the tags
  app, which hangs them on the customer's relation and marks them in WeCom after the commit.
- A name fills a blank name only: WeCom's nickname is not overwritten.
"""

import logging
import uuid
from datetime import timedelta
from typing import IO, Any

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.core.errors import Conflict, InvalidInput, SiyuError
from siyu.core.services import event_record
from siyu.core.tenancy import tenant_context
from siyu.customers.attributes import attributes_set
from siyu.customers.lifecycle import stage_set
from siyu.customers.models import Customer, IdentityKind
from siyu.customers.services import customer_for_identity, identity_link
from siyu.imports import parsing
from siyu.imports.events import CUSTOMER_IMPORTED
from siyu.imports.models import ImportJob, ImportKind, ImportRowError, ImportStatus
from siyu.imports.parsing import CustomerRow, RowProblem, TagRow, Vocabulary
from siyu.imports.selectors import access_import_job, field_checker, vocabulary_load
from siyu.tags.models import Tag, TagGroup, TagSource
from siyu.tags.services import tag_create, tag_group_create, tag_update, tags_apply

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 20
SUMMARY_ERRORS = 50
# Rows per task run; the run then re-enqueues itself, so a long file never holds one worker
# (or one broker visibility timeout) for its whole length.
BATCH_ROWS = 2000
IDENTITY_COLUMNS = {
    IdentityKind.PHONE: "phone",
    IdentityKind.UNIONID: "unionid",
    IdentityKind.EXTERNAL_USERID: "external_userid",
}


# --- upload and preview -------------------------------------------------------------------


def import_job_create(*, actor: StaffMember, kind: str, upload: UploadedFile | None) -> ImportJob:
    """Check the file and build its preview. Nothing but the job row (and the stored file)
    is written; a file that cannot be read is refused and leaves nothing behind."""
    require(actor, Action.CUSTOMERS_IMPORT)
    if kind not in ImportKind.values:
        raise InvalidInput(_("导入类型必须是 customers 或 tags"))
    if kind == ImportKind.TAGS:
        require(actor, Action.TAGS_MANAGE)  # the taxonomy is created in WeCom by the tags app
    if upload is None:
        raise InvalidInput(_("请选择要导入的文件"))
    file_name = (upload.name or "").rsplit("/", 1)[-1][:200]
    file_format = parsing.file_format_for(file_name)
    if upload.size is not None and upload.size > parsing.MAX_BYTES:
        raise parsing.FileTooLarge(
            _("文件超过 %(mb)s MB，请拆分后分批导入") % {"mb": parsing.MAX_BYTES // 1024 // 1024}
        )
    upload.seek(0)
    scan = _scan(upload, file_format, kind, vocabulary_load())
    upload.seek(0)
    stored_name = default_storage.save(
        f"imports/{actor.tenant_id}/{uuid.uuid4().hex}.{file_format}", upload
    )
    try:
        return ImportJob.objects.create(
            kind=kind,
            file_name=file_name,
            stored_name=stored_name,
            file_format=file_format,
            created_by=actor,
            **scan,
        )
    except Exception:
        default_storage.delete(stored_name)
        raise


def _scan(file: IO[bytes], file_format: str, kind: str, vocabulary: Vocabulary) -> dict[str, Any]:
    """Read the whole file once, as the run will, and say what it would do."""
    check = field_checker()
    preview: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    total = invalid = 0
    with parsing.open_table(file, file_format) as table:
        columns, ignored = parsing.map_columns(kind, table.header, vocabulary)
        labels = {target: table.header[index] for index, target in columns.items()}
        for number, cells in table.rows:
            total += 1
            if total > parsing.MAX_ROWS:
                raise InvalidInput(
                    _("文件超过 %(rows)s 行，请拆分后分批导入") % {"rows": parsing.MAX_ROWS}
                )
            try:
                row = _parse(kind, cells, columns, vocabulary, check)
                if isinstance(row, CustomerRow):
                    parsing.resolve_tag_names(row.tags, vocabulary.tags)
            except RowProblem as problem:
                invalid += 1
                error = {
                    "row": number,
                    "column": labels.get(problem.column, problem.column),
                    "message": problem.message,
                }
                if len(errors) < SUMMARY_ERRORS:
                    errors.append(error)
                if len(preview) < PREVIEW_ROWS:
                    preview.append({"row": number, "values": None, "error": error["message"]})
                continue
            if len(preview) < PREVIEW_ROWS:
                preview.append({"row": number, "values": row.as_preview(), "error": ""})
    if kind == ImportKind.CUSTOMERS:
        _mark_matches(preview)
    return {
        "encoding": table.encoding,
        "columns": {str(index): target for index, target in columns.items()},
        "ignored_columns": ignored,
        "preview": preview,
        "total_rows": total,
        "summary": {
            "rows": total,
            "valid": total - invalid,
            "invalid": invalid,
            "errors": errors,
            "columns": [
                {
                    "header": table.header[index],
                    "target": target,
                    "label": parsing.target_label(target, vocabulary),
                }
                for index, target in sorted(columns.items())
            ],
        },
    }


def _parse(
    kind: str,
    cells: list[str],
    columns: dict[int, str],
    vocabulary: Vocabulary,
    check: Any,
) -> CustomerRow | TagRow:
    if kind == ImportKind.CUSTOMERS:
        return parsing.parse_customer_row(cells, columns, vocabulary, check)
    return parsing.parse_tag_row(cells, columns)


def _mark_matches(preview: list[dict[str, Any]]) -> None:
    """Say for each preview row whether it will create a customer or update one."""
    for item in preview:
        values = item["values"]
        if values is None:
            continue
        match = None
        for kind, column in IDENTITY_COLUMNS.items():
            if values[column] and match is None:
                match = customer_for_identity(kind, values[column])
        item["customer_id"] = match.pk if match else None


# --- confirm and run ----------------------------------------------------------------------


def import_job_confirm(*, actor: StaffMember, job_id: int) -> ImportJob:
    """Queue a previewed job. Confirming twice is a conflict, not a second run."""
    job = access_import_job(actor, job_id)
    if job.summary.get("valid", 0) == 0:
        raise InvalidInput(_("没有可以导入的行，请修正文件后重新上传"))
    claimed = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.PREVIEWED).update(
        status=ImportStatus.QUEUED, updated_at=timezone.now()
    )
    if claimed != 1:
        raise Conflict(_("这个导入已经确认过了"))
    transaction.on_commit(lambda: _enqueue(job.pk))
    job.refresh_from_db()
    return job


def _enqueue(job_id: int) -> None:
    from siyu.imports.tasks import run_import

    try:
        run_import.delay(job_id)
    except Exception:
        # The broker is down; the periodic sweep finds the queued job.
        logger.exception("could not enqueue import job %s", job_id)


class _Overtaken(Exception):
    """Another run of the same job claimed the row: this run stops."""


def import_job_run(*, job_id: int, batch_rows: int = BATCH_ROWS) -> str:
    """Apply up to ``batch_rows`` more rows of a queued or running job; returns what happened.

    Each row is one transaction that also advances ``processed_rows`` from the value this run
    expects, so a crash resumes at the first unapplied row and two runs never apply a row twice.
    """
    job = ImportJob.unscoped.select_related("tenant", "created_by").filter(pk=job_id).first()
    if job is None or job.status not in {ImportStatus.QUEUED, ImportStatus.RUNNING}:
        return "skipped"
    with tenant_context(job.tenant):
        ImportJob.objects.filter(pk=job.pk, status=ImportStatus.QUEUED).update(
            status=ImportStatus.RUNNING, updated_at=timezone.now()
        )
        try:
            outcome = _run_rows(job, batch_rows)
        except InvalidInput as exc:
            _finish(job, ImportStatus.FAILED, exc.message)
            return "failed"
        if outcome == "continued":
            transaction.on_commit(lambda: _enqueue(job.pk))
        return outcome


def _run_rows(job: ImportJob, batch_rows: int) -> str:
    vocabulary = vocabulary_load()
    check = field_checker()
    columns = {int(index): target for index, target in job.columns.items()}
    labels = {target: parsing.target_label(target, vocabulary) for target in columns.values()}
    position = job.processed_rows
    applied = 0
    try:
        file = default_storage.open(job.stored_name, "rb")
    except OSError:
        raise InvalidInput(_("上传的文件已不存在，请重新上传")) from None
    with file, parsing.open_table(file, job.file_format) as table:
        for index, (number, cells) in enumerate(table.rows):
            if index < position:
                continue
            if applied >= batch_rows:
                return "continued"
            try:
                _apply_row(job, index, number, cells, columns, labels, vocabulary, check)
            except _Overtaken:
                return "overtaken"
            applied += 1
            position += 1
    _finish(job, ImportStatus.DONE, "", total_rows=position)
    return "done"


def _apply_row(
    job: ImportJob,
    index: int,
    number: int,
    cells: list[str],
    columns: dict[int, str],
    labels: dict[str, str],
    vocabulary: Vocabulary,
    check: Any,
) -> None:
    with transaction.atomic():
        claimed = ImportJob.objects.filter(pk=job.pk, processed_rows=index).update(
            processed_rows=index + 1, updated_at=timezone.now()
        )
        if claimed != 1:
            raise _Overtaken
        column, message, created = "", "", False
        try:
            # A savepoint: whatever the row wrote before failing is rolled back with it.
            with transaction.atomic():
                row = _parse(job.kind, cells, columns, vocabulary, check)
                if isinstance(row, CustomerRow):
                    created = _apply_customer(job, number, row)
                else:
                    created = _apply_tag(row, job.created_by)
        except RowProblem as problem:
            column, message = labels.get(problem.column, problem.column), problem.message
        except SiyuError as exc:  # bad values, WeCom refusing a tag, …
            message = exc.message
        except Exception:
            logger.exception("import job %s failed on row %s", job.pk, number)
            message = _("处理该行时出现内部错误，已记录；请稍后重试")
        if message:
            ImportRowError.objects.create(
                job=job, row=number, column=column[:100], message=message[:500]
            )
            counter = "failed_count"
        else:
            counter = "created_count" if created else "updated_count"
        ImportJob.objects.filter(pk=job.pk).update(**{counter: F(counter) + 1})


def _finish(job: ImportJob, status: str, failure: str, total_rows: int | None = None) -> None:
    fields: dict[str, Any] = {"status": status, "failure": failure, "finished_at": timezone.now()}
    if total_rows is not None:
        fields["total_rows"] = total_rows
    ImportJob.objects.filter(
        pk=job.pk, status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]
    ).update(**fields)


def _apply_customer(job: ImportJob, number: int, row: CustomerRow) -> bool:
    """Create or update the row's customer; True if created."""
    identities = [
        (kind, getattr(row, column))
        for kind, column in IDENTITY_COLUMNS.items()
        if getattr(row, column)
    ]
    owners: dict[int, Customer] = {}
    for kind, value in identities:
        owner = customer_for_identity(kind, value)
        if owner is not None:
            owners[owner.pk] = owner
    if len(owners) > 1:
        raise RowProblem(
            "phone",
            _("这些标识分属不同客户（%(ids)s），请先合并客户")
            % {"ids": "、".join(f"#{pk}" for pk in sorted(owners))},
        )
    created = not owners
    customer = next(iter(owners.values())) if owners else Customer.objects.create(name=row.name)
    for kind, value in identities:
        identity_link(customer, kind, value)
        owner = customer_for_identity(kind, value)
        if owner is None or owner.pk != customer.pk:
            # Linked to someone else between our lookup and our write.
            raise RowProblem(IDENTITY_COLUMNS[kind], _("该标识刚被另一位客户使用，请重试"))
    if row.name and not customer.name:
        customer.name = row.name
        customer.save(update_fields=["name", "updated_at"])
    by = job.created_by
    if row.stage:
        stage_set(customer=customer, stage=row.stage, source="import", by=by, reason="import")
    if row.fields:
        attributes_set(customer=customer, values=row.fields, source="import", by=by)
    if row.tags:
        _tags_add(customer, row.tags, by)
    event_record(
        type=CUSTOMER_IMPORTED,
        source="import",
        customer_id=customer.pk,
        idempotency_key=f"import:{job.pk}:{number}",
        payload={
            "job_id": job.pk,
            "row": number,
            "created": created,
            "by": by.userid if by else "",
        },
    )
    return created


def _tags_add(customer: Customer, names: list[str], by: StaffMember | None) -> None:
    bare = [parsing.tag_parts(name)[1] for name in names]
    existing: dict[str, list[str]] = {}
    ids: dict[tuple[str, str], int] = {}
    for pk, tag_name, group_name in Tag.objects.filter(name__in=bare).values_list(
        "pk", "name", "group__name"
    ):
        existing.setdefault(tag_name, []).append(group_name)
        ids[(group_name, tag_name)] = pk
    found = parsing.resolve_tag_names(names, existing)
    tags_apply(customer, [ids[pair] for pair in found], source=TagSource.IMPORT, by=by)


def _apply_tag(row: TagRow, by: StaffMember | None) -> bool:
    """Create the group or tag in WeCom and here (the tags app does both); True if created."""
    if by is None:
        raise InvalidInput(_("导入人已不存在，无法在企业微信创建标签"))
    group = TagGroup.objects.filter(name=row.group).first()
    if group is None:
        tag_group_create(actor=by, name=row.group, tags=[row.tag], order=0)
        if row.order is not None:
            created = Tag.objects.get(group__name=row.group, name=row.tag)
            tag_update(actor=by, tag_id=created.pk, order=row.order)
        return True
    existing = Tag.objects.filter(group=group, name=row.tag).first()
    if existing is None:
        tag_create(actor=by, group_id=group.pk, name=row.tag, order=row.order or 0)
        return True
    if row.order is not None and existing.order != row.order:
        tag_update(actor=by, tag_id=existing.pk, order=row.order)
    return False


def import_jobs_sweep(*, stale_minutes: int = 10) -> int:
    """Re-enqueue jobs whose run was lost (broker down at confirm, worker killed): queued or
    running with no progress for a while. A second run of a live job is harmless (row claims)."""
    cutoff = timezone.now() - timedelta(minutes=stale_minutes)
    ids = list(
        ImportJob.unscoped.filter(
            status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING], updated_at__lt=cutoff
        ).values_list("pk", flat=True)[:100]
    )
    for job_id in ids:
        _enqueue(job_id)
    return len(ids)
