"""WeCom's server API as the sandbox answers it: same paths, fields, errcodes and limits.

Each handler takes the world, the caller's corp and the request, and returns the success body
(``errcode``/``errmsg`` are added) or raises ``ApiError``. Handlers never fire callbacks: WeCom
only calls back for actions people take in the client or admin console (the simulator does).
"""

from __future__ import annotations

import calendar
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from siyu.sandbox.state import (
    ContactWay,
    Corp,
    GroupChat,
    MassSend,
    Tag,
    TagGroup,
    Transfer,
    World,
)

CN = timedelta(hours=8)  # WeCom's day and month boundaries are China time


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str, **empty: Any) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.empty = empty  # WeCom keeps the payload fields, empty, on many errors


@dataclass
class Request:
    method: str
    path: str  # relative to /cgi-bin/, e.g. "externalcontact/get"
    query: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def arg(self, name: str, default: Any = None) -> Any:
        if self.method == "GET":
            return self.query.get(name, default)
        return self.body.get(name, default)

    def need(self, name: str, errcode: int = 40058) -> Any:
        value = self.arg(name)
        if value in (None, "", []):
            raise ApiError(errcode, f"missing {name}")
        return value


Handler = Callable[[World, Corp, Request], dict[str, Any]]
ROUTES: dict[str, tuple[str, Handler]] = {}


def route(path: str, method: str = "POST") -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        ROUTES[path] = (method, func)
        return func

    return register


def _int(value: Any, default: int, *, low: int, high: int, clamp: bool = True) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError) as exc:
        raise ApiError(40058, "invalid parameter") from exc
    if number < low:
        raise ApiError(40058, "invalid parameter")
    return min(number, high) if clamp else number


def _page(items: list[Any], req: Request, *, default: int, maximum: int) -> tuple[list[Any], str]:
    """WeCom-style cursor paging: the cursor is an opaque offset."""
    limit = _int(req.arg("limit"), default, low=1, high=maximum)
    cursor = req.arg("cursor") or ""
    try:
        start = int(cursor, 16) if cursor else 0
    except ValueError as exc:
        raise ApiError(40058, "invalid cursor") from exc
    chunk = items[start : start + limit]
    nxt = format(start + limit, "x") if start + limit < len(items) else ""
    return chunk, nxt


def _staff(corp: Corp, userid: Any) -> Any:
    member = corp.staff.get(str(userid or ""))
    if member is None:
        raise ApiError(60111, "userid not found")
    return member


def _customer_unionid(corp: Corp, external_userid: Any) -> str:
    unionid = corp.customers.get(str(external_userid or ""))
    if unionid is None:
        raise ApiError(40096, "invalid external userid")
    return unionid


# --- address book ------------------------------------------------------------------------


@route("department/list", "GET")
def department_list(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    depts = sorted(corp.departments.values(), key=lambda d: d.id)
    return {
        "department": [
            {
                "id": d.id,
                "name": d.name,
                "name_en": "",
                "parentid": d.parentid,
                "order": d.order,
                "department_leader": [],
            }
            for d in depts
        ]
    }


@route("department/simplelist", "GET")
def department_simplelist(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return {
        "department_id": [
            {"id": d.id, "parentid": d.parentid, "order": d.order}
            for d in corp.departments.values()
        ]
    }


@route("user/get", "GET")
def user_get(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    member = _staff(corp, req.need("userid", 40003))
    return {
        "userid": member.userid,
        "name": member.name,
        "department": member.department,
        "order": [0] * len(member.department),
        "position": member.position,
        "mobile": member.mobile,
        "gender": member.gender,
        "email": member.email,
        "is_leader_in_dept": [0] * len(member.department),
        "direct_leader": [],
        "avatar": member.avatar,
        "alias": "",
        "status": member.status,
        "main_department": member.main_department,
        "extattr": {"attrs": []},
        "external_profile": {},
    }


@route("user/list_id")
def user_list_id(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    rows = [
        {"userid": s.userid, "department": s.main_department}
        for s in corp.staff.values()
        if s.status != 5
    ]
    chunk, nxt = _page(rows, req, default=10000, maximum=10000)
    return {"dept_user": chunk, "next_cursor": nxt}


# --- customers ---------------------------------------------------------------------------


def _visible_follows(corp: Corp, userid: str) -> list[Any]:
    return [f for f in corp.follows.values() if f.userid == userid and not f.half]


def _contact(world: World, corp: Corp, external_userid: str) -> dict[str, Any]:
    person = world.people[corp.customers[external_userid]]
    return {
        "external_userid": external_userid,
        "name": person.name,
        "avatar": person.avatar,
        "type": 1,
        "gender": person.gender,
        "unionid": person.unionid,
    }


def _tags_named(corp: Corp, tag_ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for tag_id in tag_ids:
        found = corp.find_tag(tag_id)
        if found:
            out.append(
                {
                    "group_name": found[0].group_name,
                    "tag_name": found[1].name,
                    "tag_id": tag_id,
                    "type": 1,
                }
            )
    return out


def _follow_info(follow: Any) -> dict[str, Any]:
    return {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
        "remark_corp_name": "",
        "remark_mobiles": follow.remark_mobiles,
        "oper_userid": follow.oper_userid,
        "add_way": follow.add_way,
        "state": follow.state,
    }


@route("externalcontact/get_follow_user_list", "GET")
def get_follow_user_list(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return {
        "follow_user": [
            s.userid for s in corp.staff.values() if s.customer_contact and s.status == 1
        ]
    }


@route("externalcontact/list", "GET")
def list_contacts(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    member = _staff(corp, req.need("userid", 40003))
    ids = [f.external_userid for f in _visible_follows(corp, member.userid)]
    if not ids:
        raise ApiError(84061, "not external contact", external_userid=[])
    return {"external_userid": ids}


@route("externalcontact/get", "GET")
def get_contact(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    ext = str(req.need("external_userid", 41035))
    _customer_unionid(corp, ext)
    follows = [f for f in corp.follows.values() if f.external_userid == ext and not f.half]
    if not follows:
        raise ApiError(84061, "not external contact")
    page, nxt = _page(follows, req, default=500, maximum=500)
    result: dict[str, Any] = {
        "external_contact": _contact(world, corp, ext),
        "follow_user": [{**_follow_info(f), "tags": _tags_named(corp, f.tag_ids)} for f in page],
    }
    if nxt:
        result["next_cursor"] = nxt
    return result


@route("externalcontact/batch/get_by_user")
def batch_get_by_user(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    userids = req.arg("userid_list") or ([req.arg("userid")] if req.arg("userid") else [])
    if not userids or not isinstance(userids, list) or len(userids) > 100:
        raise ApiError(40058, "userid_list must hold 1 to 100 userids", external_contact_list=[])
    rows = []
    for userid in userids:
        _staff(corp, userid)
        for f in _visible_follows(corp, userid):
            rows.append(
                {
                    "external_contact": _contact(world, corp, f.external_userid),
                    "follow_info": {**_follow_info(f), "tag_id": list(f.tag_ids)},
                }
            )
    chunk, nxt = _page(rows, req, default=50, maximum=100)
    return {"external_contact_list": chunk, "next_cursor": nxt}


@route("externalcontact/remark")
def remark(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    follow = _require_follow(corp, req)
    changes = {k: req.body[k] for k in ("remark", "description", "remark_mobiles") if k in req.body}
    if not changes and "remark_company" not in req.body and "remark_pic_mediaid" not in req.body:
        raise ApiError(40058, "nothing to change")
    if len(str(changes.get("remark", ""))) > 20 or len(str(changes.get("description", ""))) > 150:
        raise ApiError(40058, "remark or description too long")
    for key, value in changes.items():
        setattr(follow, key, [m for m in value if m] if key == "remark_mobiles" else value)
    return {}


def _require_follow(corp: Corp, req: Request) -> Any:
    userid = req.need("userid", 40003)
    ext = req.need("external_userid", 41035)
    _staff(corp, userid)
    _customer_unionid(corp, ext)
    follow = corp.follow(userid, ext)
    if follow is None or follow.half:
        raise ApiError(84061, "not external contact")
    return follow


# --- corp tags ---------------------------------------------------------------------------


def _group_out(
    group: TagGroup, *, with_deleted: bool = False, tags: list[Tag] | None = None
) -> dict[str, Any]:
    out = {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "tag": [
            {"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order}
            for t in (tags if tags is not None else group.tag)
        ],
    }
    if with_deleted:
        out["deleted"] = False
    return out


@route("externalcontact/get_corp_tag_list")
def get_corp_tag_list(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    tag_ids = req.arg("tag_id") or []
    group_ids = req.arg("group_id") or []
    groups = sorted(corp.tag_groups.values(), key=lambda g: -g.order)
    if group_ids:
        return {
            "tag_group": [
                _group_out(g, with_deleted=True) for g in groups if g.group_id in group_ids
            ]
        }
    if tag_ids:
        out = []
        for g in groups:
            tags = [t for t in g.tag if t.id in tag_ids]
            if tags:
                out.append(_group_out(g, with_deleted=True, tags=tags))
        return {"tag_group": out}
    return {"tag_group": [_group_out(g) for g in groups]}


@route("externalcontact/add_corp_tag")
def add_corp_tag(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    tags = req.arg("tag") or []
    if not tags or not isinstance(tags, list):
        raise ApiError(40058, "tag list is empty")
    names = []
    for t in tags:
        name = str(t.get("name", "")) if isinstance(t, dict) else ""
        if not name or len(name) > 30:
            raise ApiError(40058, "tag name must be 1-30 characters")
        if name not in names:
            names.append(name)
    if corp.tag_count() + len(names) > 3000:
        raise ApiError(40126, "corp tag count exceeds the limit")
    now = int(world.now())
    group = None
    if req.arg("group_id"):
        group = corp.tag_groups.get(req.arg("group_id"))
        if group is None:
            raise ApiError(40068, "invalid tagid")
    else:
        name = str(req.need("group_name"))
        if len(name) > 30:
            raise ApiError(40058, "group name too long")
        group = next((g for g in corp.tag_groups.values() if g.group_name == name), None)
        if group is None:
            group = TagGroup(
                group_id=world.new_id("et", 22),
                group_name=name,
                order=int(req.arg("order") or 0),
                create_time=now,
            )
            corp.tag_groups[group.group_id] = group
    existing = {t.name for t in group.tag}
    created = []
    for t in tags:
        if t["name"] in existing:
            continue
        tag = Tag(
            id=world.new_id("et", 22),
            name=t["name"],
            order=int(t.get("order", 0) or 0),
            create_time=now,
        )
        group.tag.append(tag)
        existing.add(tag.name)
        created.append(tag)
    return {"tag_group": _group_out(group, tags=created)}


@route("externalcontact/edit_corp_tag")
def edit_corp_tag(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    item_id = str(req.need("id", 40068))
    name = req.arg("name")
    if name is not None and (not name or len(name) > 30):
        raise ApiError(40058, "name must be 1-30 characters")
    if item_id in corp.tag_groups:
        group = corp.tag_groups[item_id]
        if name and any(g.group_name == name and g is not group for g in corp.tag_groups.values()):
            raise ApiError(40071, "tag name exists")
        group.group_name = name or group.group_name
        group.order = int(req.arg("order", group.order))
        return {}
    found = corp.find_tag(item_id)
    if found is None:
        raise ApiError(40068, "invalid tagid")
    group, tag = found
    if name and any(t.name == name and t is not tag for t in group.tag):
        raise ApiError(40071, "tag name exists")
    tag.name = name or tag.name
    tag.order = int(req.arg("order", tag.order))
    return {}


@route("externalcontact/del_corp_tag")
def del_corp_tag(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    tag_ids = req.arg("tag_id") or []
    group_ids = req.arg("group_id") or []
    if not tag_ids and not group_ids:
        raise ApiError(40058, "tag_id and group_id both empty")
    for gid in group_ids:
        if gid not in corp.tag_groups:
            raise ApiError(40068, "invalid tagid")
    for tid in tag_ids:
        if corp.find_tag(tid) is None:
            raise ApiError(40068, "invalid tagid")
    removed = set(tag_ids)
    for gid in group_ids:
        removed |= {t.id for t in corp.tag_groups.pop(gid).tag}
    for group in list(corp.tag_groups.values()):
        group.tag = [t for t in group.tag if t.id not in removed]
        if not group.tag:
            del corp.tag_groups[group.group_id]  # a group without tags is deleted with its last tag
    for follow in corp.follows.values():
        follow.tag_ids = [t for t in follow.tag_ids if t not in removed]
    return {}


@route("externalcontact/mark_tag")
def mark_tag(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    follow = _require_follow(corp, req)
    add = req.arg("add_tag") or []
    remove = req.arg("remove_tag") or []
    if not add and not remove:
        raise ApiError(40058, "add_tag and remove_tag both empty")
    for tid in [*add, *remove]:
        if corp.find_tag(tid) is None:
            raise ApiError(40068, "invalid tagid")
    follow.tag_ids = [t for t in follow.tag_ids if t not in remove] + [
        t for t in add if t not in follow.tag_ids
    ]
    return {}


# --- contact ways ------------------------------------------------------------------------

CONTACT_WAY_QUOTA = 500_000


def _way_users(corp: Corp, req: Request, way_type: int) -> tuple[list[str], list[int]]:
    users = req.arg("user") or []
    party = req.arg("party") or []
    if way_type == 1 and (len(users) != 1 or party):
        raise ApiError(41039, "single contact way needs exactly one user")
    for userid in users:
        member = _staff(corp, userid)
        if member.status != 1:
            raise ApiError(41054, "user not activated")
    expanded = set(users) | {
        s.userid for s in corp.staff.values() if set(s.department) & set(party)
    }
    if len(expanded) > 100:
        raise ApiError(41041, "too many users")
    if not users and not party:
        raise ApiError(41040, "user and party both empty")
    return list(users), list(party)


def _check_state(state: Any) -> str:
    state = str(state or "")
    if len(state) > 30:
        raise ApiError(40058, "state exceeds 30 characters")
    return state


@route("externalcontact/add_contact_way")
def add_contact_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    way_type = _int(req.arg("type"), 0, low=0, high=2, clamp=False)
    scene = _int(req.arg("scene"), 0, low=0, high=2, clamp=False)
    if way_type not in (1, 2):
        raise ApiError(41037, "invalid type")
    if scene not in (1, 2):
        raise ApiError(41038, "invalid scene")
    persistent = [w for w in corp.contact_ways.values() if not w.is_temp]
    if len(persistent) + len(corp.join_ways) >= CONTACT_WAY_QUOTA:
        raise ApiError(41045, "contact way count exceeds the limit")
    users, party = _way_users(corp, req, way_type)
    is_temp = bool(req.arg("is_temp", False))
    if is_temp and way_type != 1:
        raise ApiError(41039, "temporary ways are single-user")
    config_id = world.new_id("cw", 32)
    way = ContactWay(
        config_id=config_id,
        type=way_type,
        scene=scene,
        state=_check_state(req.arg("state")),
        style=int(req.arg("style", 1) or 1),
        remark=str(req.arg("remark", ""))[:30],
        skip_verify=bool(req.arg("skip_verify", True)),
        user=users,
        party=party,
        is_temp=is_temp,
        expires_in=int(req.arg("expires_in", 7 * 86400 if is_temp else 0) or 0),
        chat_expires_in=int(req.arg("chat_expires_in", 86400 if is_temp else 0) or 0),
        unionid=str(req.arg("unionid", "")),
        conclusions=req.arg("conclusions") or {},
        created=int(world.now()),
    )
    if scene == 2:
        way.qr_code = f"/sandbox/qr/{config_id}.png"
    corp.contact_ways[config_id] = way
    out = {"config_id": config_id}
    if scene == 2:
        out["qr_code"] = way.qr_code
    return out


def _way(corp: Corp, req: Request) -> ContactWay:
    way = corp.contact_ways.get(str(req.need("config_id", 41044)))
    if way is None:
        raise ApiError(41044, "invalid config_id")
    return way


@route("externalcontact/get_contact_way")
def get_contact_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    way = _way(corp, req)
    fields = (
        "config_id",
        "type",
        "scene",
        "style",
        "remark",
        "skip_verify",
        "state",
        "qr_code",
        "user",
        "party",
        "is_temp",
        "expires_in",
        "chat_expires_in",
        "unionid",
        "conclusions",
    )
    return {"contact_way": {f: getattr(way, f) for f in fields}}


@route("externalcontact/list_contact_way")
def list_contact_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    now = int(world.now())
    start = int(req.arg("start_time") or now - 90 * 86400)
    end = int(req.arg("end_time") or now)
    ways = [
        {"config_id": w.config_id}
        for w in corp.contact_ways.values()
        if not w.is_temp and start <= w.created <= end
    ]
    chunk, nxt = _page(ways, req, default=100, maximum=1000)
    return {"contact_way": chunk, "next_cursor": nxt}


@route("externalcontact/update_contact_way")
def update_contact_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    way = _way(corp, req)
    if way.is_temp and way.used:
        raise ApiError(41044, "temporary way expired")
    if "user" in req.body or "party" in req.body:
        way.user, way.party = _way_users(corp, req, way.type)
    if "state" in req.body:
        way.state = _check_state(req.body["state"])
    for key in (
        "remark",
        "skip_verify",
        "style",
        "expires_in",
        "chat_expires_in",
        "unionid",
        "conclusions",
    ):
        if key in req.body:
            setattr(way, key, req.body[key])
    return {}


@route("externalcontact/del_contact_way")
def del_contact_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    way = _way(corp, req)
    del corp.contact_ways[way.config_id]
    return {}


@route("externalcontact/groupchat/add_join_way")
def add_join_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    chats = req.arg("chat_id_list") or []
    if not chats or len(chats) > 5:
        raise ApiError(41091, "chat_id_list must hold 1 to 5 chats")
    config_id = world.new_id("jw", 32)
    corp.join_ways[config_id] = {
        "config_id": config_id,
        "scene": int(req.arg("scene", 2) or 2),
        "remark": str(req.arg("remark", "")),
        "auto_create_room": int(req.arg("auto_create_room", 1) or 0),
        "room_base_name": str(req.arg("room_base_name", "")),
        "room_base_id": int(req.arg("room_base_id", 1) or 1),
        "chat_id_list": chats,
        "state": _check_state(req.arg("state")),
        "qr_code": f"/sandbox/qr/{config_id}.png",
    }
    return {"config_id": config_id}


@route("externalcontact/groupchat/get_join_way")
def get_join_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    way = corp.join_ways.get(str(req.need("config_id", 41044)))
    if way is None:
        raise ApiError(41044, "invalid config_id")
    return {"join_way": way}


@route("externalcontact/groupchat/del_join_way")
def del_join_way(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    if corp.join_ways.pop(str(req.need("config_id", 41044)), None) is None:
        raise ApiError(41044, "invalid config_id")
    return {}


# --- welcome messages --------------------------------------------------------------------

WELCOME_TTL = 20.0


def _check_message(req: Request) -> None:
    text = req.arg("text") or {}
    attachments = req.arg("attachments") or []
    content = str(text.get("content", "")) if isinstance(text, dict) else ""
    if len(content.encode()) > 4000:
        raise ApiError(40058, "text too long")
    if not content and not attachments:
        raise ApiError(41048, "text and attachments both empty")
    if len(attachments) > 9:
        raise ApiError(41064, "too many attachments")
    for item in attachments:
        kind = item.get("msgtype") if isinstance(item, dict) else None
        if kind not in {"image", "link", "miniprogram", "video", "file"} or kind not in item:
            raise ApiError(41065, "attachment msgtype mismatch")


@route("externalcontact/send_welcome_msg")
def send_welcome_msg(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    code = str(req.need("welcome_code", 41049))
    welcome = corp.welcome_codes.get(code)
    if welcome is None or world.now() - welcome.issued_at > WELCOME_TTL:
        raise ApiError(41050, "invalid welcome code or expired")
    if welcome.used_by:
        raise ApiError(41051, "externaluser has started chatting")
    _check_message(req)
    welcome.used_by = "api"
    corp.received.setdefault(welcome.external_userid, []).append(
        [
            world.now(),
            f"welcome:{code}",
            {
                "text": req.arg("text"),
                "attachments": req.arg("attachments") or [],
                "from": welcome.userid,
            },
        ]
    )
    return {}


# --- mass sends --------------------------------------------------------------------------


def quota_for(rule: str, at: float) -> tuple[float, int]:
    """(window start, cap) of the per-customer receive quota at ``at``, in China time."""
    local = datetime.fromtimestamp(at, tz=UTC) + CN
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if rule == "one_per_day":
        start, cap = day, 1
    elif rule == "seven_per_week":
        start, cap = day - timedelta(days=day.weekday()), 7
    else:
        start = day.replace(day=1)
        cap = calendar.monthrange(local.year, local.month)[1] if rule == "days_in_month" else 4
    return (start - CN).timestamp(), cap


@route("externalcontact/add_msg_template")
def add_msg_template(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    chat_type = str(req.arg("chat_type") or "single")
    if chat_type not in {"single", "group"}:
        raise ApiError(40058, "invalid chat_type")
    _check_message(req)
    sender = req.arg("sender") or ""
    if sender:
        _staff(corp, sender)
    targets: dict[str, list[str]] = {}
    fail: list[str] = []
    if chat_type == "group":
        if not sender:
            raise ApiError(40058, "sender is required for group sends")
        chat_ids = req.arg("chat_id_list") or [
            c.chat_id for c in corp.group_chats.values() if c.owner == sender and not c.dismissed
        ]
        if len(chat_ids) > 2000:
            raise ApiError(40058, "too many chats")
        targets[sender] = [c for c in chat_ids if c in corp.group_chats]
    else:
        ext_ids = req.arg("external_userid") or []
        if len(ext_ids) > 10000:
            raise ApiError(40058, "too many external_userid")
        tag_groups = (req.arg("tag_filter") or {}).get("group_list") or []
        candidates = [
            f for f in corp.follows.values() if not f.half and (not sender or f.userid == sender)
        ]
        if ext_ids:
            wanted = set(ext_ids)
            candidates = [f for f in candidates if f.external_userid in wanted]
            found = {f.external_userid for f in candidates}
            fail = [e for e in ext_ids if e not in found]
        for group in tag_groups:
            tags = set(group.get("tag_list") or [])
            candidates = [f for f in candidates if tags & set(f.tag_ids)]
        seen: set[str] = set()
        for f in sorted(candidates, key=lambda f: -f.createtime):
            if f.external_userid in seen:
                continue  # pushed to one member only (WeCom: the one who chatted last)
            seen.add(f.external_userid)
            targets.setdefault(f.userid, []).append(f.external_userid)
    if not any(targets.values()):
        raise ApiError(41048, "no external contact can be sent", fail_list=fail)
    msgid = world.new_id("msg", 28)
    corp.mass_sends[msgid] = MassSend(
        msgid=msgid,
        chat_type=chat_type,
        creator=sender,
        create_time=int(world.now()),
        text=req.arg("text") or {},
        attachments=req.arg("attachments") or [],
        targets=targets,
        task_status={u: [0, 0] for u in targets},
        results={f"{u}|{t}": [0, 0] for u, ts in targets.items() for t in ts},
    )
    return {"fail_list": fail, "msgid": msgid}


def _mass_send(corp: Corp, req: Request) -> MassSend:
    msgid = str(req.need("msgid", 41046))
    send = corp.mass_sends.get(msgid)
    if send is None:
        raise ApiError(41047, "invalid msgid")
    return send


@route("externalcontact/get_groupmsg_list_v2")
def get_groupmsg_list_v2(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    chat_type = req.need("chat_type")
    start, end = int(req.need("start_time")), int(req.need("end_time"))
    if end - start > 31 * 86400 or end < start:
        raise ApiError(40058, "time span exceeds one month")
    rows = [
        {
            "msgid": s.msgid,
            "create_time": str(s.create_time),
            "create_type": 0,
            "text": s.text,
            "attachments": s.attachments,
        }
        for s in corp.mass_sends.values()
        if s.chat_type == chat_type
        and start <= s.create_time <= end
        and (not req.arg("creator") or s.creator == req.arg("creator"))
    ]
    chunk, nxt = _page(rows, req, default=50, maximum=100)
    return {"group_msg_list": chunk, "next_cursor": nxt}


@route("externalcontact/get_groupmsg_task")
def get_groupmsg_task(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    send = _mass_send(corp, req)
    rows = [
        {"userid": u, "status": st[0], **({"send_time": st[1]} if st[1] else {})}
        for u, st in send.task_status.items()
    ]
    chunk, nxt = _page(rows, req, default=500, maximum=1000)
    return {"task_list": chunk, "next_cursor": nxt}


@route("externalcontact/get_groupmsg_send_result")
def get_groupmsg_send_result(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    send = _mass_send(corp, req)
    userid = req.need("userid", 40003)
    key = "chat_id" if send.chat_type == "group" else "external_userid"
    rows = []
    for pair, (status, at) in send.results.items():
        owner, target = pair.split("|", 1)
        if owner != userid or (send.chat_type == "group" and status != 1):
            continue
        rows.append(
            {
                key: target,
                "userid": owner,
                "status": status,
                **({"send_time": int(at)} if at else {}),
            }
        )
    chunk, nxt = _page(rows, req, default=500, maximum=1000)
    return {"send_list": chunk, "next_cursor": nxt}


@route("externalcontact/remind_groupmsg_send")
def remind_groupmsg_send(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    send = _mass_send(corp, req)
    if send.cancelled:
        raise ApiError(41093, "msg has been cancelled")
    now = world.now()
    if sum(1 for t in send.reminders if now - t < 86400) >= 3:
        raise ApiError(41094, "remind too frequently")
    send.reminders.append(now)
    return {}


@route("externalcontact/cancel_groupmsg_send")
def cancel_groupmsg_send(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    _mass_send(corp, req).cancelled = True
    return {}


# --- transfers ---------------------------------------------------------------------------


def _transfer(world: World, corp: Corp, req: Request, *, resigned: bool) -> dict[str, Any]:
    handover = _staff(corp, req.need("handover_userid", 40003))
    takeover = _staff(corp, req.need("takeover_userid", 40003))
    ext_ids = req.arg("external_userid") or []
    if not ext_ids or len(ext_ids) > 100:
        raise ApiError(40058, "external_userid must hold 1 to 100 ids", customer=[])
    if resigned and handover.status != 5:
        raise ApiError(40097, "handover user is not resigned", customer=[])
    now = int(world.now())
    out = []
    for ext in ext_ids:
        code = 0
        recent = [
            t
            for t in corp.transfers
            if t.external_userid == ext
            and now - t.takeover_time < 90 * 86400
            and t.status in (1, 2)
        ]
        follow = corp.follow(handover.userid, ext)
        if ext not in corp.customers:
            code = 40096
        elif handover.userid == takeover.userid:
            code = 40130
        elif follow is None:
            code = 40131
        elif any(t.status == 2 for t in recent):
            code = 40129
        elif len(recent) >= 2:
            code = 40128
        if code == 0:
            corp.transfers.append(
                Transfer(handover.userid, takeover.userid, ext, 2, now + 86400, resigned)
            )
        out.append({"external_userid": ext, "errcode": code})
    return {"customer": out}


@route("externalcontact/transfer_customer")
def transfer_customer(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return _transfer(world, corp, req, resigned=False)


@route("externalcontact/resigned/transfer_customer")
def resigned_transfer_customer(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return _transfer(world, corp, req, resigned=True)


def settle_transfers(world: World, corp: Corp) -> list[Transfer]:
    """Transfers whose 24 h passed complete: the customer moves to the takeover member."""
    from siyu.sandbox.state import Follow

    now = world.now()
    done = []
    for t in corp.transfers:
        if t.status == 2 and now >= t.takeover_time:
            t.status = 1
            old = corp.follows.pop(f"{t.handover_userid}|{t.external_userid}", None)
            key = f"{t.takeover_userid}|{t.external_userid}"
            if key not in corp.follows:
                corp.follows[key] = Follow(
                    userid=t.takeover_userid,
                    external_userid=t.external_userid,
                    createtime=int(now),
                    add_way=202 if t.resigned else 201,
                    state=old.state if old else "",
                    oper_userid=t.handover_userid,
                    tag_ids=list(old.tag_ids) if old else [],
                )
            done.append(t)
    return done


def _transfer_result(world: World, corp: Corp, req: Request, *, resigned: bool) -> dict[str, Any]:
    settle_transfers(world, corp)
    handover = req.need("handover_userid", 40003)
    takeover = req.need("takeover_userid", 40003)
    rows = [
        {"external_userid": t.external_userid, "status": t.status, "takeover_time": t.takeover_time}
        for t in corp.transfers
        if t.handover_userid == handover
        and t.takeover_userid == takeover
        and t.resigned == resigned
    ]
    chunk, nxt = _page(rows, req, default=1000, maximum=1000)
    return {"customer": chunk, "next_cursor": nxt}


@route("externalcontact/transfer_result")
def transfer_result(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return _transfer_result(world, corp, req, resigned=False)


@route("externalcontact/resigned/transfer_result")
def resigned_transfer_result(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return _transfer_result(world, corp, req, resigned=True)


@route("externalcontact/get_unassigned_list")
def get_unassigned_list(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    waiting = {(t.handover_userid, t.external_userid) for t in corp.transfers if t.status in (1, 2)}
    rows = [
        {"handover_userid": f.userid, "external_userid": f.external_userid, "dimission_time": 0}
        for f in corp.follows.values()
        if corp.staff.get(f.userid)
        and corp.staff[f.userid].status == 5
        and (f.userid, f.external_userid) not in waiting
    ]
    size = _int(req.arg("page_size"), 1000, low=1, high=1000)
    if req.arg("cursor") is not None or req.arg("page_id") is None:
        chunk, nxt = _page(
            rows,
            Request(req.method, req.path, req.query, {"limit": size, "cursor": req.arg("cursor")}),
            default=size,
            maximum=1000,
        )
        return {"info": chunk, "is_last": not nxt, "next_cursor": nxt}
    page_id = _int(req.arg("page_id"), 0, low=0, high=10**6)
    if page_id * size >= 50000:
        raise ApiError(40058, "page_id * page_size must stay below 50000; use cursor")
    chunk = rows[page_id * size : (page_id + 1) * size]
    return {"info": chunk, "is_last": (page_id + 1) * size >= len(rows)}


# --- group chats -------------------------------------------------------------------------


@route("externalcontact/groupchat/list")
def groupchat_list(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    if req.arg("limit") in (None, ""):
        raise ApiError(40058, "limit is required", group_chat_list=[])
    owners = ((req.arg("owner_filter") or {}).get("userid_list")) or []
    if len(owners) > 100:
        raise ApiError(40058, "too many owners")
    rows = [
        {"chat_id": c.chat_id, "status": 0}
        for c in corp.group_chats.values()
        if not c.dismissed and (not owners or c.owner in owners)
    ]
    chunk, nxt = _page(rows, req, default=1000, maximum=1000)
    return {"group_chat_list": chunk, "next_cursor": nxt}


def chat_out(world: World, corp: Corp, chat: GroupChat) -> dict[str, Any]:
    members = []
    for m in chat.members.values():
        row: dict[str, Any] = {
            "userid": m.userid,
            "type": m.type,
            "join_time": m.join_time,
            "join_scene": m.join_scene,
            "invitor": {"userid": m.invitor} if m.invitor else {},
            "group_nickname": "",
            "name": m.name,
        }
        if m.type == 2:
            row["unionid"] = m.unionid
        members.append(row)
    return {
        "chat_id": chat.chat_id,
        "name": chat.name,
        "owner": chat.owner,
        "create_time": chat.create_time,
        "notice": chat.notice,
        "member_list": members,
        "admin_list": [{"userid": a} for a in chat.admin_list],
        "member_version": str(chat.member_version),
    }


@route("externalcontact/groupchat/get")
def groupchat_get(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    chat = corp.group_chats.get(str(req.need("chat_id", 40050)))
    if chat is None or chat.dismissed:
        raise ApiError(40050, "invalid chatid")
    return {"group_chat": chat_out(world, corp, chat)}


def _move_chats(world: World, corp: Corp, req: Request, *, resigned: bool) -> dict[str, Any]:
    chat_ids = req.arg("chat_id_list") or []
    if not chat_ids or len(chat_ids) > 100:
        raise ApiError(40058, "chat_id_list must hold 1 to 100 chats", failed_chat_list=[])
    new_owner = _staff(corp, req.need("new_owner", 40003))
    failed = []
    for chat_id in chat_ids:
        chat = corp.group_chats.get(chat_id)
        if chat is None:
            failed.append({"chat_id": chat_id, "errcode": 90501, "errmsg": "not external group"})
            continue
        owner = corp.staff.get(chat.owner)
        if resigned and owner is not None and owner.status != 5:
            failed.append(
                {"chat_id": chat_id, "errcode": 90500, "errmsg": "group owner not resigned"}
            )
            continue
        chat.owner = new_owner.userid
        chat.member_version += 1
    return {"failed_chat_list": failed}


@route("externalcontact/groupchat/transfer")
def groupchat_transfer(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return _move_chats(world, corp, req, resigned=True)


@route("externalcontact/groupchat/onjob_transfer")
def groupchat_onjob_transfer(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    return _move_chats(world, corp, req, resigned=False)


# --- moments, statistics, app messages, media --------------------------------------------


@route("externalcontact/add_moment_task")
def add_moment_task(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    text = req.arg("text") or {}
    attachments = req.arg("attachments") or []
    if not text and not attachments:
        raise ApiError(41048, "text and attachments both empty")
    if len(str(text.get("content", ""))) > 2000 or len(attachments) > 9:
        raise ApiError(40058, "content too long or too many attachments")
    jobid = world.new_id("job", 24)
    corp.moment_jobs[jobid] = {
        "status": 3,
        "type": "add_moment_task",
        "result": {
            "errcode": 0,
            "errmsg": "ok",
            "moment_id": world.new_id("mom", 24),
            "invalid_sender_list": {},
            "invalid_external_contact_list": {},
        },
        "created": world.now(),
        "body": req.body,
    }
    return {"jobid": jobid}


@route("externalcontact/get_moment_task_result", "GET")
def get_moment_task_result(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    job = corp.moment_jobs.get(str(req.need("jobid", 40058)))
    if job is None or world.now() - job["created"] > 86400:
        raise ApiError(40058, "invalid jobid")
    return {k: job[k] for k in ("status", "type", "result")}


@route("externalcontact/get_user_behavior_data")
def get_user_behavior_data(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    users = req.arg("userid") or []
    parties = req.arg("partyid") or []
    if not users and not parties:
        raise ApiError(40058, "userid and partyid both empty")
    start, end = int(req.need("start_time")), int(req.need("end_time"))
    if end < start or end - start > 30 * 86400:
        raise ApiError(40058, "range must be at most 30 days")
    members = set(users) | {
        s.userid for s in corp.staff.values() if set(s.department) & set(parties)
    }
    day0 = int(
        (datetime.fromtimestamp(start, tz=UTC) + CN).replace(hour=0, minute=0, second=0).timestamp()
        - CN.total_seconds()
    )
    rows = []
    for day in range(day0, end + 1, 86400):
        adds = sum(
            1
            for f in corp.follows.values()
            if f.userid in members and day <= f.createtime < day + 86400
        )
        rows.append(
            {
                "stat_time": day,
                "new_apply_cnt": adds,
                "new_contact_cnt": adds,
                "chat_cnt": 0,
                "message_cnt": 0,
                "negative_feedback_cnt": 0,
            }
        )
    return {"behavior_data": rows}


@route("message/send")
def message_send(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    msgtype = req.need("msgtype", 41008)
    if str(req.arg("agentid", "")) != str(corp.agent_id):
        raise ApiError(301002, "not allow operate another agent with this accesstoken")
    if msgtype not in req.body:
        raise ApiError(40008, "invalid message type")
    users = [u for u in str(req.arg("touser", "")).split("|") if u]
    if not users:
        raise ApiError(40058, "touser is empty")
    valid = [u for u in users if u in corp.staff and corp.staff[u].status == 1]
    invalid = [u for u in users if u not in valid]
    msgid = world.new_id("am", 24)
    for userid in valid:
        corp.app_messages.append(
            {
                "msgid": msgid,
                "touser": userid,
                "msgtype": msgtype,
                msgtype: req.body[msgtype],
                "at": world.now(),
            }
        )
    out: dict[str, Any] = {"msgid": msgid}
    if invalid:
        out["invaliduser"] = "|".join(invalid)
    return out


def _media(world: World, corp: Corp, req: Request) -> dict[str, Any]:
    if not req.files:
        raise ApiError(41005, "media data missing")
    name, data = next(iter(req.files.values()))
    if len(data) > 20 * 1024 * 1024:
        raise ApiError(40006, "invalid file size")
    media_id = world.new_id("media", 40)
    corp.media[media_id] = {
        "name": name,
        "size": len(data),
        "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324 (a content fingerprint)
        "created": world.now(),
    }
    return {
        "type": req.query.get("type", "file"),
        "media_id": media_id,
        "created_at": str(int(world.now())),
    }


route("media/upload")(_media)
route("media/upload_attachment")(_media)


def new_token() -> str:
    return secrets.token_urlsafe(48)
