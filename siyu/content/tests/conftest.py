from collections.abc import Callable
from typing import Any

import pytest

from siyu.accounts.models import StaffMember
from siyu.content.models import ContentItem
from siyu.content.services import item_create


@pytest.fixture
def make_item(in_acme) -> Callable[..., ContentItem]:
    """An article by acme's ops member (tenant context active for the test body)."""

    def make(actor: StaffMember | None = None, **fields: Any) -> ContentItem:
        fields.setdefault("kind", "article")
        fields.setdefault("title", "私域运营白皮书")
        if fields["kind"] == "article":
            fields.setdefault("body", "<p>第一章</p>")
        return item_create(actor=actor or in_acme["ops"], **fields)

    return make
