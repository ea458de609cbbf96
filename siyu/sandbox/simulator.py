"""People acting: customers scanning codes, adding and deleting staff, joining groups; staff
confirming mass sends; admins changing the address book and tags. Each action changes the world
and fires the callback WeCom would fire for it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from siyu.sandbox.delivery import Dispatcher
from siyu.sandbox.state import (
    Corp,
    Department,
    Follow,
    GroupChat,
    GroupMember,
    Staff,
    Tag,
    TagGroup,
    WelcomeCode,
    World,
)
from siyu.sandbox.wecom_api import quota_for, settle_transfers


class SimulationError(ValueError):
    """A simulator action that cannot happen (unknown code, no such member …)."""


def event_xml(corp: Corp, event: str, change_type: str, at: int, fields: dict[str, Any]) -> str:
    parts = [
        f"<ToUserName><![CDATA[{corp.corpid}]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{at}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        f"<Event><![CDATA[{event}]]></Event>",
        f"<ChangeType><![CDATA[{change_type}]]></ChangeType>",
    ]
    for name, value in fields.items():
        if isinstance(value, list):
            items = "".join(f"<Item><![CDATA[{escape(str(v))}]]></Item>" for v in value)
            parts.append(f"<{name}>{items}</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


class Simulator:
    def __init__(self, world: World, dispatcher: Dispatcher) -> None:
        self.world = world
        self.dispatcher = dispatcher
        self.actions: dict[str, Callable[..., dict[str, Any]]] = {
            "scan": self.scan,
            "add": self.add,
            "accept_half": self.accept_half,
            "customer_delete": self.customer_delete,
            "staff_delete": self.staff_delete,
            "edit": self.edit,
            "create_group": self.create_group,
            "join_group": self.join_group,
            "leave_group": self.leave_group,
            "dismiss_group": self.dismiss_group,
            "confirm_mass_send": self.confirm_mass_send,
            "refuse_transfer": self.refuse_transfer,
            "settle_transfers": self.settle_transfers,
            "create_user": self.create_user,
            "update_user": self.update_user,
            "delete_user": self.delete_user,
            "resign": self.resign,
            "create_party": self.create_party,
            "delete_party": self.delete_party,
            "admin_create_tag": self.admin_create_tag,
            "admin_delete_tag": self.admin_delete_tag,
        }

    def run(self, corpid: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self.actions.get(action)
        if handler is None:
            raise SimulationError(f"unknown action {action!r}")
        with self.world.lock:
            corp = self.world.corps.get(corpid)
            if corp is None:
                raise SimulationError(f"unknown corp {corpid!r}")
            try:
                return handler(corp, **params)
            except TypeError as exc:
                raise SimulationError(f"bad parameters for {action}: {exc}") from exc

    def _fire(
        self, corp: Corp, event: str, change_type: str, at: int | None = None, **fields: Any
    ) -> None:
        at = at if at is not None else int(self.world.now())
        key = (
            f"{event}/{change_type}/"
            + "/".join(str(v) for v in fields.values() if not isinstance(v, list))[:200]
        )
        self.dispatcher.send(corp, key, event_xml(corp, event, change_type, at, fields))

    def _member(self, corp: Corp, userid: str) -> Staff:
        member = corp.staff.get(userid)
        if member is None or member.status == 5:
            raise SimulationError(f"no active member {userid!r}")
        return member

    def _customer(self, corp: Corp, unionid: str | None, name: str) -> str:
        person = self.world.person(unionid, name)
        ext = self.world.external_userid(corp, person.unionid)
        corp.customers.setdefault(ext, person.unionid)
        return ext

    # --- customers ---------------------------------------------------------------------

    def scan(
        self,
        corp: Corp,
        config_id: str = "",
        state: str = "",
        unionid: str | None = None,
        name: str = "",
        at: int | None = None,
    ) -> dict[str, Any]:
        """A WeChat user scans a contact way (by config_id, or by its state)."""
        way = (
            corp.contact_ways.get(config_id)
            if config_id
            else next((w for w in corp.contact_ways.values() if state and w.state == state), None)
        )
        if way is None:
            raise SimulationError("no contact way with that config_id or state")
        if way.is_temp and way.used:
            raise SimulationError("this temporary contact way was used already")
        members = [u for u in way.user if u in corp.staff and corp.staff[u].status == 1]
        members += [
            s.userid
            for s in corp.staff.values()
            if s.status == 1 and set(s.department) & set(way.party) and s.userid not in members
        ]
        if not members:
            raise SimulationError("no active member behind this contact way")
        userid = members[way.rotation % len(members)]
        way.rotation += 1
        way.used = way.used or way.is_temp
        return self.add(
            corp, userid=userid, unionid=unionid, name=name, state=way.state, add_way=1, at=at
        )

    def add(
        self,
        corp: Corp,
        userid: str,
        unionid: str | None = None,
        name: str = "",
        state: str = "",
        add_way: int = 1,
        half: bool = False,
        at: int | None = None,
    ) -> dict[str, Any]:
        member = self._member(corp, userid)
        ext = self._customer(corp, unionid, name)
        at = at if at is not None else int(self.world.now())
        key = f"{userid}|{ext}"
        follow = corp.follows.get(key)
        if follow is not None and not follow.deleted_by_customer and not follow.half:
            raise SimulationError(f"{ext} is already a customer of {userid}")
        corp.follows[key] = Follow(
            userid=userid,
            external_userid=ext,
            createtime=at,
            add_way=add_way,
            state=state,
            oper_userid=ext,
            half=half,
        )
        code = ""
        if not member.admin_welcome:
            code = secrets.token_urlsafe(24)
            corp.welcome_codes[code] = WelcomeCode(
                code=code, userid=userid, external_userid=ext, issued_at=self.world.now()
            )
        fields: dict[str, Any] = {"UserID": userid, "ExternalUserID": ext}
        if state:
            fields["State"] = state
        if code:
            fields["WelcomeCode"] = code
        self._fire(
            corp,
            "change_external_contact",
            "add_half_external_contact" if half else "add_external_contact",
            at,
            **fields,
        )
        return {
            "external_userid": ext,
            "userid": userid,
            "welcome_code": code,
            "unionid": corp.customers[ext],
        }

    def accept_half(self, corp: Corp, userid: str, external_userid: str) -> dict[str, Any]:
        follow = corp.follow(userid, external_userid)
        if follow is None or not follow.half:
            raise SimulationError("no half contact to accept")
        follow.half = False
        self._fire(
            corp,
            "change_external_contact",
            "add_external_contact",
            UserID=userid,
            ExternalUserID=external_userid,
        )
        return {}

    def customer_delete(
        self, corp: Corp, userid: str, external_userid: str, at: int | None = None
    ) -> dict[str, Any]:
        """The customer deletes the member: one-way, WeCom still lists them for the member."""
        follow = corp.follow(userid, external_userid)
        if follow is None or follow.deleted_by_customer:
            raise SimulationError("no such relation")
        follow.deleted_by_customer = True
        self._fire(
            corp,
            "change_external_contact",
            "del_follow_user",
            at,
            UserID=userid,
            ExternalUserID=external_userid,
        )
        return {}

    def staff_delete(
        self, corp: Corp, userid: str, external_userid: str, at: int | None = None
    ) -> dict[str, Any]:
        if corp.follows.pop(f"{userid}|{external_userid}", None) is None:
            raise SimulationError("no such relation")
        self._fire(
            corp,
            "change_external_contact",
            "del_external_contact",
            at,
            UserID=userid,
            ExternalUserID=external_userid,
        )
        return {}

    def edit(
        self,
        corp: Corp,
        userid: str,
        external_userid: str,
        remark: str | None = None,
        description: str | None = None,
        add_tags: list[str] | None = None,
        remove_tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """The member edits remark, description or corp tags in the client."""
        follow = corp.follow(userid, external_userid)
        if follow is None:
            raise SimulationError("no such relation")
        if remark is not None:
            follow.remark = remark
        if description is not None:
            follow.description = description
        follow.tag_ids = [t for t in follow.tag_ids if t not in (remove_tags or [])] + [
            t for t in add_tags or [] if t not in follow.tag_ids and corp.find_tag(t)
        ]
        self._fire(
            corp,
            "change_external_contact",
            "edit_external_contact",
            UserID=userid,
            ExternalUserID=external_userid,
        )
        return {}

    # --- group chats -------------------------------------------------------------------

    def create_group(
        self, corp: Corp, owner: str, name: str = "", members: list[str] | None = None
    ) -> dict[str, Any]:
        self._member(corp, owner)
        at = int(self.world.now())
        chat = GroupChat(
            chat_id=self.world.new_id("wr", 32), name=name or "客户群", owner=owner, create_time=at
        )
        chat.members[owner] = GroupMember(userid=owner, type=1, join_time=at)
        for ext in members or []:
            chat.members[ext] = GroupMember(
                userid=ext, type=2, join_time=at, unionid=corp.customers.get(ext, ""), invitor=owner
            )
        corp.group_chats[chat.chat_id] = chat
        self._fire(corp, "change_external_chat", "create", at, ChatId=chat.chat_id)
        return {"chat_id": chat.chat_id}

    def _chat(self, corp: Corp, chat_id: str) -> GroupChat:
        chat = corp.group_chats.get(chat_id)
        if chat is None or chat.dismissed:
            raise SimulationError("no such group chat")
        return chat

    def join_group(
        self,
        corp: Corp,
        chat_id: str,
        external_userid: str = "",
        unionid: str | None = None,
        name: str = "",
        join_scene: int = 3,
    ) -> dict[str, Any]:
        chat = self._chat(corp, chat_id)
        ext = external_userid or self._customer(corp, unionid, name)
        corp.customers.setdefault(ext, unionid or "")
        if ext in chat.members:
            raise SimulationError("already a member")
        last = chat.member_version
        chat.members[ext] = GroupMember(
            userid=ext,
            type=2,
            join_time=int(self.world.now()),
            join_scene=join_scene,
            unionid=corp.customers.get(ext, ""),
        )
        chat.member_version += 1
        self._fire(
            corp,
            "change_external_chat",
            "update",
            ChatId=chat_id,
            UpdateDetail="add_member",
            JoinScene=0 if join_scene != 3 else 3,
            MemChangeCnt=1,
            MemChangeList=[ext],
            LastMemVer=str(last),
            CurMemVer=str(chat.member_version),
        )
        return {"external_userid": ext}

    def leave_group(
        self, corp: Corp, chat_id: str, external_userid: str, removed: bool = False
    ) -> dict[str, Any]:
        chat = self._chat(corp, chat_id)
        if chat.members.pop(external_userid, None) is None:
            raise SimulationError("not a member")
        last = chat.member_version
        chat.member_version += 1
        self._fire(
            corp,
            "change_external_chat",
            "update",
            ChatId=chat_id,
            UpdateDetail="del_member",
            QuitScene=1 if removed else 0,
            MemChangeCnt=1,
            MemChangeList=[external_userid],
            LastMemVer=str(last),
            CurMemVer=str(chat.member_version),
        )
        return {}

    def dismiss_group(self, corp: Corp, chat_id: str) -> dict[str, Any]:
        self._chat(corp, chat_id).dismissed = True
        self._fire(corp, "change_external_chat", "dismiss", ChatId=chat_id)
        return {}

    # --- mass sends and transfers ------------------------------------------------------

    def confirm_mass_send(self, corp: Corp, msgid: str, userid: str) -> dict[str, Any]:
        """The member confirms the task in the client: each target receives it within the quota."""
        send = corp.mass_sends.get(msgid)
        if send is None or userid not in send.targets:
            raise SimulationError("no such task for this member")
        if send.cancelled:
            raise SimulationError("the mass send was cancelled")
        if send.task_status[userid][0] == 2:
            return {"sent": 0, "over_quota": 0, "not_friend": 0}
        now = self.world.now()
        start, cap = quota_for(corp.mass_send_rule, now)
        counts = {"sent": 0, "over_quota": 0, "not_friend": 0}
        for target in send.targets[userid]:
            if send.chat_type == "group":
                status = 1
            else:
                follow = corp.follow(userid, target)
                received = [
                    r
                    for r in corp.received.get(target, [])
                    if r[0] >= start and str(r[1]).startswith("mass:")
                ]
                if follow is None or follow.deleted_by_customer:
                    status = 2
                elif len(received) >= cap:
                    status = 3
                else:
                    status = 1
                    corp.received.setdefault(target, []).append(
                        [
                            now,
                            f"mass:{msgid}",
                            {"text": send.text, "attachments": send.attachments, "from": userid},
                        ]
                    )
            send.results[f"{userid}|{target}"] = [status, int(now) if status == 1 else 0]
            counts[{1: "sent", 2: "not_friend", 3: "over_quota"}[status]] += 1
        send.task_status[userid] = [2, int(now)]
        return counts

    def refuse_transfer(self, corp: Corp, external_userid: str) -> dict[str, Any]:
        for t in corp.transfers:
            if t.external_userid == external_userid and t.status == 2:
                t.status = 3
                self._fire(
                    corp,
                    "change_external_contact",
                    "transfer_fail",
                    UserID=t.takeover_userid,
                    ExternalUserID=external_userid,
                    FailReason="customer_refused",
                )
                return {}
        raise SimulationError("no waiting transfer for this customer")

    def settle_transfers(self, corp: Corp) -> dict[str, Any]:
        return {"settled": len(settle_transfers(self.world, corp))}

    # --- address book and tags (admin console) -----------------------------------------

    def create_party(
        self, corp: Corp, id: int, name: str, parentid: int = 1, order: int = 0
    ) -> dict[str, Any]:
        corp.departments[int(id)] = Department(int(id), name, int(parentid), int(order))
        self._fire(
            corp,
            "change_contact",
            "create_party",
            Id=int(id),
            Name=name,
            ParentId=str(parentid),
            Order=int(order),
        )
        return {}

    def delete_party(self, corp: Corp, id: int) -> dict[str, Any]:
        if corp.departments.pop(int(id), None) is None:
            raise SimulationError("no such department")
        self._fire(corp, "change_contact", "delete_party", Id=int(id))
        return {}

    def create_user(
        self, corp: Corp, userid: str, name: str, department: list[int] | None = None, **extra: Any
    ) -> dict[str, Any]:
        if userid in corp.staff:
            raise SimulationError("userid exists")
        depts = department or [1]
        corp.staff[userid] = Staff(
            userid=userid, name=name, department=depts, main_department=depts[0], **extra
        )
        self._fire(
            corp,
            "change_contact",
            "create_user",
            UserID=userid,
            Name=name,
            Department=",".join(map(str, depts)),
            MainDepartment=str(depts[0]),
            Status="1",
        )
        return {}

    def update_user(
        self,
        corp: Corp,
        userid: str,
        name: str | None = None,
        department: list[int] | None = None,
        position: str | None = None,
    ) -> dict[str, Any]:
        member = self._member(corp, userid)
        fields: dict[str, Any] = {"UserID": userid}
        if name is not None:
            member.name = name
            fields["Name"] = name
        if department is not None:
            member.department = department
            member.main_department = department[0]
            fields["Department"] = ",".join(map(str, department))
        if position is not None:
            member.position = position
            fields["Position"] = position
        self._fire(corp, "change_contact", "update_user", **fields)
        return {}

    def delete_user(self, corp: Corp, userid: str) -> dict[str, Any]:
        if corp.staff.pop(userid, None) is None:
            raise SimulationError("no such member")
        self._fire(corp, "change_contact", "delete_user", UserID=userid)
        return {}

    def resign(self, corp: Corp, userid: str) -> dict[str, Any]:
        """The member leaves: their customers become unassigned until transferred."""
        self._member(corp, userid).status = 5
        self._fire(corp, "change_contact", "update_user", UserID=userid, Status="5")
        return {}

    def admin_create_tag(self, corp: Corp, group_name: str, name: str) -> dict[str, Any]:
        now = int(self.world.now())
        group = next((g for g in corp.tag_groups.values() if g.group_name == group_name), None)
        if group is None:
            group = TagGroup(
                group_id=self.world.new_id("et", 22), group_name=group_name, create_time=now
            )
            corp.tag_groups[group.group_id] = group
        tag = Tag(id=self.world.new_id("et", 22), name=name, create_time=now)
        group.tag.append(tag)
        self._fire(corp, "change_external_tag", "create", Id=tag.id, TagType="tag")
        return {"tag_id": tag.id, "group_id": group.group_id}

    def admin_delete_tag(self, corp: Corp, tag_id: str) -> dict[str, Any]:
        found = corp.find_tag(tag_id)
        if found is None:
            raise SimulationError("no such tag")
        found[0].tag.remove(found[1])
        for follow in corp.follows.values():
            follow.tag_ids = [t for t in follow.tag_ids if t != tag_id]
        self._fire(corp, "change_external_tag", "delete", Id=tag_id, TagType="tag")
        return {}
