"""Reads of the content library and the radar's numbers.

Everyone who may share content sees the whole library (it is the team's briefcase); radar
numbers are about people, so they are limited to the visits of links sent by members in the
viewer's data scope (staff: their own sends, managers: their department, boss: everyone).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Q, QuerySet
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require, visible_staff_ids
from siyu.content.models import ContentItem, Folder, UrlStatus, Visit
from siyu.core.errors import NotFound

MAX_TREE_NODES = 500


def items_list(
    *,
    actor: StaffMember,
    folder_id: int | None = None,
    tag: str = "",
    kind: str = "",
    query: str = "",
    archived: bool = False,
) -> QuerySet[ContentItem]:
    require(actor, Action.CONTENT_SHARE)
    items = ContentItem.objects.filter(archived_at__isnull=not archived)
    if folder_id is not None:
        items = items.filter(folder_id=folder_id)
    if tag:
        items = items.filter(tags__name=tag)
    if kind:
        items = items.filter(kind=kind)
    if query:
        items = items.filter(Q(title__icontains=query) | Q(summary__icontains=query))
    return items.select_related("folder").prefetch_related("tags").distinct()


def item_get(*, actor: StaffMember, item_id: int) -> ContentItem:
    require(actor, Action.CONTENT_SHARE)
    item = ContentItem.objects.select_related("folder").filter(pk=item_id).first()
    if item is None:
        raise NotFound("content not found")
    return item


def folders_list(*, actor: StaffMember) -> list[Folder]:
    require(actor, Action.CONTENT_SHARE)
    return list(Folder.objects.all())


@dataclass(frozen=True)
class FolderNode:
    folder: Folder
    depth: int

    @property
    def indent(self) -> str:
        return "— " * self.depth


def folder_tree(*, actor: StaffMember) -> list[FolderNode]:
    """Folders flattened in tree order (each with its depth), for indented rendering."""
    by_parent: dict[int | None, list[Folder]] = {}
    for folder in folders_list(actor=actor):
        by_parent.setdefault(folder.parent_id, []).append(folder)
    ordered: list[FolderNode] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for folder in by_parent.get(parent_id, []):
            ordered.append(FolderNode(folder=folder, depth=depth))
            walk(folder.pk, depth + 1)

    walk(None, 0)
    return ordered


def _visits(actor: StaffMember) -> QuerySet[Visit]:
    require(actor, Action.CONTENT_SHARE)
    ids = visible_staff_ids(actor)
    visits = Visit.objects.all()
    return visits if ids is None else visits.filter(sender_id__in=ids)


@dataclass(frozen=True)
class Stats:
    opens: int
    visitors: int
    identified: int
    avg_read_seconds: float
    forwards: int


def _stats(visits: QuerySet[Visit]) -> Stats:
    row = visits.aggregate(
        opens=Count("pk"),
        visitors=Count("visitor_key", distinct=True),
        identified=Count("customer_id", distinct=True),
        avg_read=Avg("read_seconds", filter=Q(read_seconds__gt=0)),
        forwards=Count("pk", filter=Q(forwarded_from__isnull=False)),
    )
    return Stats(
        opens=row["opens"],
        visitors=row["visitors"],
        identified=row["identified"],
        avg_read_seconds=round(float(row["avg_read"] or 0), 1),
        forwards=row["forwards"],
    )


def item_stats(*, actor: StaffMember, item: ContentItem, since: datetime | None = None) -> Stats:
    """Opens, unique visitors, identified customers, average read time (of visits that read at
    all) and opens that came through a forward, within the actor's scope."""
    visits = _visits(actor).filter(item=item)
    if since is not None:
        visits = visits.filter(opened_at__gte=since)
    return _stats(visits)


@dataclass
class TreeNode:
    visit: Visit
    children: list["TreeNode"] = field(default_factory=list)


def forward_tree(*, actor: StaffMember, item: ContentItem) -> list[TreeNode]:
    """Who opened the item and through whose forward: roots are opens of links as sent, children
    opened a share of their parent's visit. The newest ``MAX_TREE_NODES`` visits in scope; a
    forward whose parent is outside that window is shown as a root."""
    visits = list(
        _visits(actor)
        .filter(item=item)
        .select_related("customer", "sender", "link")
        .order_by("-opened_at", "-pk")[:MAX_TREE_NODES]
    )
    nodes = {visit.pk: TreeNode(visit=visit) for visit in reversed(visits)}
    roots: list[TreeNode] = []
    for node in nodes.values():
        parent = nodes.get(node.visit.forwarded_from_id or 0)
        (parent.children if parent is not None else roots).append(node)
    return roots


@dataclass(frozen=True)
class StaffStats:
    staff_id: int
    name: str
    opens: int
    visitors: int
    avg_read_seconds: float
    forwards: int


def staff_stats(*, actor: StaffMember, days: int = 30) -> list[StaffStats]:
    """Per sending member in the actor's scope, over the last ``days``: most opens first."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        _visits(actor)
        .filter(opened_at__gte=since)
        .values("sender_id", "sender__name")
        .annotate(
            opens=Count("pk"),
            visitors=Count("visitor_key", distinct=True),
            avg_read=Avg("read_seconds", filter=Q(read_seconds__gt=0)),
            forward_opens=Count("pk", filter=Q(forwarded_from__isnull=False)),
        )
        .order_by("-opens", "sender_id")
    )
    return [
        StaffStats(
            staff_id=row["sender_id"],
            name=row["sender__name"],
            opens=row["opens"],
            visitors=row["visitors"],
            avg_read_seconds=round(float(row["avg_read"] or 0), 1),
            forwards=row["forward_opens"],
        )
        for row in rows
    ]


def card_members(*, actor: StaffMember) -> QuerySet[StaffMember]:
    """Members whose name card an item may show."""
    require(actor, Action.CONTENT_MANAGE)
    return StaffMember.objects.filter(status=StaffStatus.ACTIVE).order_by("name")


def recent_visits(*, actor: StaffMember, item: ContentItem, limit: int = 50) -> list[Visit]:
    return list(
        _visits(actor)
        .filter(item=item)
        .select_related("customer", "sender", "forwarded_from__customer")
        .order_by("-opened_at", "-pk")[:limit]
    )


def unchecked_url_items(*, older_than: timedelta) -> list[int]:
    """Items whose link check never ran (job lost), for the sweep to re-enqueue."""
    cutoff = timezone.now() - older_than
    return list(
        ContentItem.objects.filter(
            ~Q(url=""), url_status=UrlStatus.UNCHECKED, updated_at__lte=cutoff
        ).values_list("pk", flat=True)[:500]
    )
