"""Shared API schema pieces: strict input models and pagination."""

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from ninja import Schema
from pydantic import ConfigDict, Field


class StrictIn(Schema):
    """Input bodies reject unknown fields instead of silently ignoring a typo."""

    model_config = ConfigDict(extra="forbid")


class PageParams(Schema):
    limit: int = Field(50, ge=1, le=settings.SIYU_API_PAGE_MAX)
    offset: int = Field(0, ge=0, le=10_000_000)


def paginate(queryset: QuerySet[Any], page: PageParams) -> dict[str, Any]:
    return {
        "count": queryset.count(),
        "limit": page.limit,
        "offset": page.offset,
        "items": list(queryset[page.offset : page.offset + page.limit]),
    }


class PageOut(Schema):
    count: int
    limit: int
    offset: int
