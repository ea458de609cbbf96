"""Who the demo company is: its staff, channel codes, tags, content and catalog, and the names
its customers go by. Plain data, so the replay and the live activity agree."""

from __future__ import annotations

import random
from dataclasses import dataclass

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯"
    "邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
    "华玉萍红娥玲芬燕彬鹏辉建宇晨欣怡子涵浩然梓萱雨桐思远嘉琪"
)
NICKNAMES = ["小", "阿", "大", "老"]

# (department wecom id, how many members) — the five demo logins come on top.
SALES_TEAMS = [(3, 16), (4, 14), (5, 5)]


@dataclass(frozen=True)
class Code:
    name: str
    tags: tuple[str, ...]
    weight: float  # share of the company's adds
    team: int  # department whose members staff the code
    welcome: str


CHANNEL_TAGS = (
    "门店地推",
    "展会",
    "公众号",
    "朋友圈广告",
    "老客推荐",
    "视频号",
    "直播间",
    "包裹卡",
)
CODES = [
    Code(
        "门店地推码",
        ("门店地推",),
        0.20,
        3,
        "{客户昵称}您好，我是{员工姓名}，到店扫码福利已为您备好～",
    ),
    Code("春季展会码", ("展会",), 0.08, 4, "{客户昵称}您好，感谢展会到访！样品资料马上发您。"),
    Code(
        "公众号菜单码",
        ("公众号",),
        0.14,
        5,
        "您好，我是{员工姓名}，公众号专属顾问，有问题随时找我。",
    ),
    Code(
        "朋友圈广告码",
        ("朋友圈广告",),
        0.16,
        3,
        "{客户昵称}您好，新人专享券已到账，点开商城即可使用。",
    ),
    Code(
        "老客推荐码",
        ("老客推荐",),
        0.10,
        4,
        "{客户昵称}您好，感谢朋友推荐，我是您的专属顾问{员工姓名}。",
    ),
    Code("视频号主页码", ("视频号",), 0.12, 5, "您好！视频号里的同款在这里下单更优惠～"),
    Code(
        "直播间福利码",
        ("直播间",),
        0.12,
        3,
        "{客户昵称}，直播间福利码已收到，开播提醒会第一时间通知您。",
    ),
    Code("包裹卡二维码", ("包裹卡",), 0.08, 4, "您好，感谢购买！售后和复购优惠都可以找我。"),
]
INTEREST_TAGS = ("绿茶", "红茶", "乌龙", "茶具")
INTENT_TAGS = ("高意向", "一般", "仅咨询")

ARTICLES = [
    ("新手泡茶指南：三步泡出好绿茶", "<p>水温 80℃，茶水比 1:50，第一泡 45 秒。</p>"),
    ("明前龙井上新，老客专享价", "<p>今年的明前龙井到了，老客户凭券立减 30 元。</p>"),
    ("办公室喝什么茶？一张表看懂", "<p>提神选绿茶，暖胃选红茶，解腻选乌龙。</p>"),
    ("茶具保养的五个小技巧", "<p>紫砂壶不用洗洁精，用后及时晾干。</p>"),
]
# (product, [(sku, price in fen)])
CATALOG = [
    ("明前龙井", [("250g 罐装", 16800), ("500g 礼盒", 32800)]),
    ("滇红金芽", [("200g", 12800)]),
    ("安溪铁观音", [("250g", 9800), ("500g", 18800)]),
    ("便携旅行茶具", [("一壶两杯", 15900)]),
    ("冷泡茶包", [("30 包", 5900)]),
]


def staff_roster() -> list[tuple[str, str, int]]:
    """The 35 sales and service members besides the demo logins: (userid, name, department)."""
    rng = random.Random(7)  # the roster never changes with the customers' seed
    roster = []
    for department, count in SALES_TEAMS:
        for i in range(count):
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(("", rng.choice(GIVEN)))
            roster.append((f"s{department}{i + 1:02d}", name, department))
    return roster


def customer_name(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(NICKNAMES) + rng.choice(GIVEN)
    return rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(("", rng.choice(GIVEN)))
