"""The sandbox's world: corps, staff, WeChat people, follows, tags, contact ways, groups, mass
sends and transfers — in memory, guarded by one lock, optionally saved to a JSON file.

Ids look like WeCom's (external_userid ``wm…``, chat ``wr…``, tag ``et…``) and are derived
deterministically from a seed, so a run can be reproduced.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Department:
    id: int
    name: str
    parentid: int = 0
    order: int = 0


@dataclass
class Staff:
    userid: str
    name: str
    department: list[int] = field(default_factory=lambda: [1])
    main_department: int = 1
    position: str = ""
    mobile: str = ""
    gender: str = "0"
    email: str = ""
    avatar: str = ""
    status: int = 1  # 1 active, 2 disabled, 4 not activated, 5 left
    customer_contact: bool = True
    admin_welcome: bool = False  # an admin-configured welcome message suppresses WelcomeCode


@dataclass
class Person:
    """A WeChat user. ``unionid`` is global; each corp sees them under its own external_userid."""

    unionid: str
    name: str
    avatar: str = ""
    gender: int = 0


@dataclass
class Follow:
    userid: str
    external_userid: str
    createtime: int
    add_way: int = 1
    state: str = ""
    oper_userid: str = ""
    remark: str = ""
    description: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)
    deleted_by_customer: bool = False  # one-way: WeCom still lists the contact for the member
    half: bool = False  # skip-verify add the member has not accepted


@dataclass
class Tag:
    id: str
    name: str
    order: int = 0
    create_time: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    order: int = 0
    create_time: int = 0
    tag: list[Tag] = field(default_factory=list)


@dataclass
class ContactWay:
    config_id: str
    type: int
    scene: int
    state: str = ""
    style: int = 1
    remark: str = ""
    skip_verify: bool = True
    user: list[str] = field(default_factory=list)
    party: list[int] = field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    conclusions: dict[str, Any] = field(default_factory=dict)
    qr_code: str = ""
    created: int = 0
    used: bool = False  # temporary ways die once used
    rotation: int = 0  # which member of a multi-member way the next scan reaches


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used_by: str = ""  # first caller wins


@dataclass
class GroupMember:
    userid: str
    type: int  # 1 member, 2 external
    join_time: int
    join_scene: int = 1
    unionid: str = ""
    invitor: str = ""
    name: str = ""


@dataclass
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    members: dict[str, GroupMember] = field(default_factory=dict)
    admin_list: list[str] = field(default_factory=list)
    member_version: int = 1
    dismissed: bool = False


@dataclass
class MassSend:
    msgid: str
    chat_type: str
    creator: str
    create_time: int
    text: dict[str, Any]
    attachments: list[dict[str, Any]]
    # userid → recipients (external_userid or chat_id) chosen when the template was created
    targets: dict[str, list[str]] = field(default_factory=dict)
    task_status: dict[str, list[int]] = field(default_factory=dict)  # userid → [status, send_time]
    results: dict[str, list[Any]] = field(default_factory=dict)  # "userid|target" → [status, time]
    cancelled: bool = False
    reminders: list[float] = field(default_factory=list)


@dataclass
class Transfer:
    handover_userid: str
    takeover_userid: str
    external_userid: str
    status: int  # 1 done, 2 waiting, 3 refused, 4 takeover at limit
    takeover_time: int
    resigned: bool = False


@dataclass
class Corp:
    corpid: str
    corp_name: str
    contact_secret: str
    app_secret: str
    agent_id: str = "1000002"
    callback_url: str = ""
    callback_token: str = ""
    callback_aes_key: str = ""
    mass_send_rule: str = "days_in_month"
    departments: dict[int, Department] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # external_userid → unionid
    follows: dict[str, Follow] = field(default_factory=dict)  # "userid|external_userid"
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    join_ways: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    group_chats: dict[str, GroupChat] = field(default_factory=dict)
    mass_sends: dict[str, MassSend] = field(default_factory=dict)
    received: dict[str, list[list[Any]]] = field(default_factory=dict)  # ext → [[time, msgid]]
    app_messages: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    moment_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)

    def follow(self, userid: str, external_userid: str) -> Follow | None:
        return self.follows.get(f"{userid}|{external_userid}")

    def tag_count(self) -> int:
        return sum(len(g.tag) for g in self.tag_groups.values())

    def find_tag(self, tag_id: str) -> tuple[TagGroup, Tag] | None:
        for group in self.tag_groups.values():
            for tag in group.tag:
                if tag.id == tag_id:
                    return group, tag
        return None


class World:
    """Everything the sandbox knows. Hold ``lock`` while reading or changing it."""

    def __init__(self, *, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 (simulation, not security)
        self.clock_offset = 0.0
        self.corps: dict[str, Corp] = {}
        self.people: dict[str, Person] = {}
        self.wechat_apps: dict[str, str] = {}  # official-account appid → secret, for H5 OAuth
        # WeChat Pay merchants the pay emulator knows: mchid → {"appid", "api_v3_key"}.
        self.pay_merchants: dict[str, dict[str, str]] = {}
        self.counter = 0

    def now(self) -> float:
        return time.time() + self.clock_offset

    def new_id(self, prefix: str, length: int = 30) -> str:
        self.counter += 1
        digest = hashlib.sha1(f"{self.seed}:{prefix}:{self.counter}".encode()).hexdigest()  # noqa: S324
        return prefix + digest[: length - len(prefix)]

    def external_userid(self, corp: Corp, unionid: str) -> str:
        """The stable id ``corp`` sees for the person with ``unionid``."""
        digest = hashlib.sha1(f"{corp.corpid}:{unionid}".encode()).hexdigest()  # noqa: S324
        return "wm" + digest[:30]

    def person(self, unionid: str | None = None, name: str = "") -> Person:
        if unionid and unionid in self.people:
            return self.people[unionid]
        unionid = unionid or self.new_id("ou", 28)
        person = Person(unionid=unionid, name=name or f"微信用户{len(self.people) + 1}")
        self.people[unionid] = person
        return person

    # --- persistence ---------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seed": self.seed,
                "counter": self.counter,
                "clock_offset": self.clock_offset,
                "people": {k: asdict(v) for k, v in self.people.items()},
                "wechat_apps": dict(self.wechat_apps),
                "pay_merchants": dict(self.pay_merchants),
                "corps": {k: asdict(v) for k, v in self.corps.items()},
            }

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.dump(), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> World:
        data = json.loads(path.read_text(encoding="utf-8"))
        world = cls(seed=data.get("seed", 0))
        world.counter = data.get("counter", 0)
        world.clock_offset = data.get("clock_offset", 0.0)
        world.people = {k: Person(**v) for k, v in data.get("people", {}).items()}
        world.wechat_apps = dict(data.get("wechat_apps", {}))
        world.pay_merchants = dict(data.get("pay_merchants", {}))
        for corpid, raw in data.get("corps", {}).items():
            corp = Corp(
                **{k: v for k, v in raw.items() if k in CORP_SETTINGS},
            )
            corp.departments = {int(k): Department(**v) for k, v in raw["departments"].items()}
            corp.staff = {k: Staff(**v) for k, v in raw["staff"].items()}
            corp.customers = dict(raw["customers"])
            corp.follows = {k: Follow(**v) for k, v in raw["follows"].items()}
            corp.tag_groups = {
                k: TagGroup(**{**v, "tag": [Tag(**t) for t in v["tag"]]})
                for k, v in raw["tag_groups"].items()
            }
            corp.contact_ways = {k: ContactWay(**v) for k, v in raw["contact_ways"].items()}
            corp.join_ways = dict(raw["join_ways"])
            corp.welcome_codes = {k: WelcomeCode(**v) for k, v in raw["welcome_codes"].items()}
            corp.group_chats = {
                k: GroupChat(
                    **{**v, "members": {m: GroupMember(**gm) for m, gm in v["members"].items()}}
                )
                for k, v in raw["group_chats"].items()
            }
            corp.mass_sends = {k: MassSend(**v) for k, v in raw["mass_sends"].items()}
            corp.received = dict(raw["received"])
            corp.app_messages = list(raw["app_messages"])
            corp.transfers = [Transfer(**t) for t in raw["transfers"]]
            corp.moment_jobs = dict(raw["moment_jobs"])
            corp.media = dict(raw["media"])
            world.corps[corpid] = corp
        return world


# A corp's scalar settings: what the control API may set and what a snapshot restores.
CORP_SETTINGS = {
    "corpid",
    "corp_name",
    "contact_secret",
    "app_secret",
    "agent_id",
    "callback_url",
    "callback_token",
    "callback_aes_key",
    "mass_send_rule",
}
