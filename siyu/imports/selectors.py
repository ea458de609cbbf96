"""Reads of import jobs: the caller's tenant only, importers only."""

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.core.errors import NotFound
from siyu.customers.attributes import attribute_value_clean
from siyu.customers.lifecycle import stages
from siyu.customers.models import CustomField
from siyu.imports.models import ImportJob, ImportRowError
from siyu.imports.parsing import Vocabulary
from siyu.tags.models import Tag


def import_job_list(*, actor: StaffMember) -> QuerySet[ImportJob]:
    require(actor, Action.CUSTOMERS_IMPORT)
    return ImportJob.objects.select_related("created_by").order_by("-created_at", "-pk")


def access_import_job(actor: StaffMember, job_id: int) -> ImportJob:
    job = import_job_list(actor=actor).filter(pk=job_id).first()
    if job is None:
        raise NotFound("import job not found")
    return job


def import_row_errors(*, actor: StaffMember, job_id: int) -> QuerySet[ImportRowError]:
    job = access_import_job(actor, job_id)
    return ImportRowError.objects.filter(job=job).order_by("row", "pk")


def vocabulary_load() -> Vocabulary:
    """The tenant's custom fields, stages and tag names, for mapping headers and cells."""
    stage_map: dict[str, str] = {}
    for stage in stages():
        stage_map[stage.key] = stage.key
        stage_map.setdefault(stage.name, stage.key)
    tags: dict[str, list[str]] = {}
    for name, group in Tag.objects.values_list("name", "group__name"):
        tags.setdefault(name, []).append(group)
    return Vocabulary(
        fields={f.key: (f.name, f.kind, list(f.choices)) for f in CustomField.objects.all()},
        stages=stage_map,
        tags=tags,
    )


def field_checker() -> Callable[[str, str], Any]:
    """Coerces a custom field's cell by the customer core's rules, without writing."""
    fields = {f.key: f for f in CustomField.objects.all()}

    def check(key: str, value: str) -> Any:
        return attribute_value_clean(fields[key], value)

    return check
