"""Tags API: the taxonomy (synced with WeCom), customers' tags, auto-tag rules, quality."""

from datetime import datetime

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import StrictIn
from siyu.core.errors import NotFound
from siyu.tags import selectors, services
from siyu.tags.models import MASS_SEND_TAG_SIZE, CustomerTag, TagGroup, TagRule

router = Router(tags=["tags"])

# Names and orders are checked by the services (the console shares the rules), not here.


class TagOut(Schema):
    id: int
    name: str
    order: int
    wecom_id: str | None
    customer_count: int = 0
    oversized: bool = Field(
        False,
        description=f"the group is meant for mass sends and this tag holds more than "
        f"{MASS_SEND_TAG_SIZE} customers",
    )


class TagGroupOut(Schema):
    id: int
    name: str
    order: int
    wecom_id: str | None
    required: bool
    mass_send: bool
    tags: list[TagOut]
    hint: str | None

    @staticmethod
    def resolve_tags(obj: TagGroup) -> list[object]:
        return list(obj.tags.all())

    @staticmethod
    def resolve_hint(obj: TagGroup) -> str | None:
        oversized = getattr(obj, "oversized_tags", [])
        if not oversized:
            return None
        names = "、".join(f"{t.name}（{t.customer_count}）" for t in oversized)
        return _(
            "用于群发的标签建议每个不超过 %(size)s 人，以下标签已超出：%(names)s。"
            "可按时间批次或地区拆分。"
        ) % {"size": MASS_SEND_TAG_SIZE, "names": names}


class TagGroupIn(StrictIn):
    name: str
    tags: list[str] = Field(..., max_length=100)
    order: int = 0
    required: bool = False
    mass_send: bool = False


class TagGroupPatchIn(StrictIn):
    name: str | None = None
    order: int | None = None
    required: bool | None = None
    mass_send: bool | None = None


class TagIn(StrictIn):
    name: str
    order: int = 0


class TagPatchIn(StrictIn):
    name: str | None = None
    order: int | None = None


class CustomerTagOut(Schema):
    tag_id: int
    tag_name: str
    group_id: int
    group_name: str
    source: str
    staff_userid: str | None = Field(..., description="the member whose relation carries it")
    applied_by_userid: str | None = Field(..., description="who applied it")
    rule_id: int | None
    rule_name: str | None
    applied_at: datetime

    @staticmethod
    def resolve_tag_name(obj: CustomerTag) -> str:
        return obj.tag.name

    @staticmethod
    def resolve_group_id(obj: CustomerTag) -> int:
        return obj.tag.group_id

    @staticmethod
    def resolve_group_name(obj: CustomerTag) -> str:
        return obj.tag.group.name

    @staticmethod
    def resolve_staff_userid(obj: CustomerTag) -> str | None:
        return obj.staff.userid if obj.staff else None

    @staticmethod
    def resolve_applied_by_userid(obj: CustomerTag) -> str | None:
        return obj.applied_by.userid if obj.applied_by else None

    @staticmethod
    def resolve_rule_name(obj: CustomerTag) -> str | None:
        return obj.rule.name if obj.rule else None


class CustomerTagsIn(StrictIn):
    add: list[int] = Field(default_factory=list, max_length=100)
    remove: list[int] = Field(default_factory=list, max_length=100)


class TagRuleOut(Schema):
    id: int
    name: str
    enabled: bool
    event_type: str
    conditions: dict[str, str | int | bool]
    threshold: int
    window_days: int
    tag_id: int
    tag_name: str
    created_by_userid: str | None
    created_at: datetime

    @staticmethod
    def resolve_tag_name(obj: TagRule) -> str:
        return obj.tag.name

    @staticmethod
    def resolve_created_by_userid(obj: TagRule) -> str | None:
        return obj.created_by.userid if obj.created_by else None


class TagRuleIn(StrictIn):
    name: str
    event_type: str
    tag_id: int
    threshold: int = Field(1, description="events needed within the window")
    window_days: int = Field(7, description="1–365")
    conditions: dict[str, str | int | bool] = Field(
        default_factory=dict, description="payload key → value; every one must match"
    )
    enabled: bool = True


class TagRulePatchIn(StrictIn):
    name: str | None = None
    event_type: str | None = None
    tag_id: int | None = None
    threshold: int | None = None
    window_days: int | None = None
    conditions: dict[str, str | int | bool] | None = None
    enabled: bool | None = None


class GroupRef(Schema):
    id: int
    name: str


class MissingOut(Schema):
    group_id: int
    customers: int


class MemberQualityOut(Schema):
    staff_id: int
    userid: str
    name: str
    customers: int
    compliant: int
    share: float | None = Field(..., description="compliant / customers; null without customers")
    missing: list[MissingOut]


class QualityOut(Schema):
    required_groups: list[GroupRef]
    members: list[MemberQualityOut]


def _group_out(request: HttpRequest, group_id: int) -> TagGroup:
    found = selectors.taxonomy(actor=actor(request), group_id=group_id)
    if not found:
        raise NotFound(_("标签组不存在"))
    return found[0]


@router.get("/groups", response=list[TagGroupOut])
def list_groups(request: HttpRequest) -> object:
    return selectors.taxonomy(actor=actor(request))


@router.post("/groups", response={201: TagGroupOut})
def create_group(request: HttpRequest, payload: TagGroupIn) -> Status[object]:
    group = services.tag_group_create(actor=actor(request), **payload.model_dump())
    return Status(201, _group_out(request, group.pk))


@router.patch("/groups/{group_id}", response=TagGroupOut)
def update_group(request: HttpRequest, group_id: int, payload: TagGroupPatchIn) -> object:
    services.tag_group_update(
        actor=actor(request), group_id=group_id, **payload.model_dump(exclude_none=True)
    )
    return _group_out(request, group_id)


@router.delete("/groups/{group_id}", response={204: None})
def delete_group(request: HttpRequest, group_id: int) -> Status[object]:
    services.tag_group_delete(actor=actor(request), group_id=group_id)
    return Status(204, None)


@router.post("/groups/{group_id}/tags", response={201: TagOut})
def create_tag(request: HttpRequest, group_id: int, payload: TagIn) -> Status[object]:
    tag = services.tag_create(actor=actor(request), group_id=group_id, **payload.model_dump())
    return Status(201, tag)


@router.patch("/{int:tag_id}", response=TagOut)
def update_tag(request: HttpRequest, tag_id: int, payload: TagPatchIn) -> object:
    return services.tag_update(
        actor=actor(request), tag_id=tag_id, **payload.model_dump(exclude_none=True)
    )


@router.delete("/{int:tag_id}", response={204: None})
def delete_tag(request: HttpRequest, tag_id: int) -> Status[object]:
    services.tag_delete(actor=actor(request), tag_id=tag_id)
    return Status(204, None)


@router.get("/customers/{customer_id}", response=list[CustomerTagOut])
def list_customer_tags(request: HttpRequest, customer_id: int) -> object:
    return selectors.customer_tag_list(actor=actor(request), customer_id=customer_id)


@router.post("/customers/{customer_id}", response=list[CustomerTagOut])
def change_customer_tags(request: HttpRequest, customer_id: int, payload: CustomerTagsIn) -> object:
    """Add and remove tags by hand; marked in WeCom on the relation that carries them."""
    services.customer_tags_change(
        actor=actor(request), customer_id=customer_id, add=payload.add, remove=payload.remove
    )
    return selectors.customer_tag_list(actor=actor(request), customer_id=customer_id)


@router.get("/rules", response=list[TagRuleOut])
def list_rules(request: HttpRequest) -> object:
    return selectors.tag_rule_list(actor=actor(request))


@router.post("/rules", response={201: TagRuleOut})
def create_rule(request: HttpRequest, payload: TagRuleIn) -> Status[object]:
    return Status(201, services.tag_rule_create(actor=actor(request), **payload.model_dump()))


@router.patch("/rules/{rule_id}", response=TagRuleOut)
def update_rule(request: HttpRequest, rule_id: int, payload: TagRulePatchIn) -> object:
    return services.tag_rule_update(
        actor=actor(request), rule_id=rule_id, **payload.model_dump(exclude_none=True)
    )


@router.delete("/rules/{rule_id}", response={204: None})
def delete_rule(request: HttpRequest, rule_id: int) -> Status[object]:
    services.tag_rule_delete(actor=actor(request), rule_id=rule_id)
    return Status(204, None)


@router.get("/quality", response=QualityOut)
def quality(request: HttpRequest) -> dict[str, object]:
    """Tagging compliance per member in scope: customers lacking each required group."""
    report = selectors.tag_compliance(actor=actor(request))
    return {
        "required_groups": report.groups,
        "members": [
            {
                "staff_id": row.staff.pk,
                "userid": row.staff.userid,
                "name": row.staff.name,
                "customers": row.customers,
                "compliant": row.compliant,
                "share": row.share,
                "missing": [{"group_id": g, "customers": n} for g, n in row.missing.items()],
            }
            for row in report.members
        ],
    }
