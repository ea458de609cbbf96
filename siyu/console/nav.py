"""The console navigation follows the loop: 获客 / 运营 / 转化 / 管理 / 数据 / 设置.

Apps add their pages with ``nav_item``; a page shows for a member only if the permission layer
lets them perform its action. Groups with no page yet are shown as "coming" rather than hidden,
so the loop stays visible as the product grows.
"""

from dataclasses import dataclass, field

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can


@dataclass
class NavItem:
    label: str | Promise
    url_name: str
    action: Action


@dataclass
class NavGroup:
    key: str
    label: str | Promise
    items: list[NavItem] = field(default_factory=list)


NAV: list[NavGroup] = [
    NavGroup("acquire", _("获客")),
    NavGroup("operate", _("运营")),
    NavGroup("convert", _("转化")),
    NavGroup("manage", _("管理")),
    NavGroup("data", _("数据")),
    NavGroup("settings", _("设置")),
]


def nav_item(group: str, label: str | Promise, url_name: str, action: Action) -> None:
    target = next(g for g in NAV if g.key == group)
    if all(item.url_name != url_name for item in target.items):
        target.items.append(NavItem(label, url_name, action))


def nav_for(staff: StaffMember | None, current_path: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = []
    for group in NAV:
        items = []
        for item in group.items:
            if can(staff, item.action):
                url = reverse(item.url_name)
                items.append(
                    {"label": item.label, "url": url, "active": current_path.startswith(url)}
                )
        result.append({"key": group.key, "label": group.label, "items": items})
    return result


nav_item("acquire", _("裂变活动"), "console:fission_campaigns", Action.FISSION_MANAGE)
nav_item("acquire", _("渠道活码"), "console:channels", Action.CHANNELS_MANAGE)
nav_item("manage", _("客户"), "console:customers", Action.CUSTOMERS_VIEW)
nav_item("manage", _("标签"), "console:tags", Action.TAGS_MANAGE)
nav_item("manage", _("自动打标签"), "console:tag_rules", Action.TAGS_MANAGE)
nav_item("manage", _("标签质检"), "console:tag_quality", Action.TAGS_QUALITY)
nav_item("manage", _("客户分群"), "console:segments", Action.CUSTOMERS_VIEW)
nav_item("manage", _("导入导出"), "console:imports", Action.CUSTOMERS_EXPORT)
nav_item("manage", _("在职继承"), "console:transfers_onjob", Action.TRANSFER_CUSTOMERS)
nav_item("manage", _("离职继承"), "console:transfers_resigned", Action.TRANSFER_CUSTOMERS)
nav_item("manage", _("继承记录"), "console:transfer_jobs", Action.TRANSFER_CUSTOMERS)
nav_item("data", _("渠道分析"), "console:analytics_channels", Action.ANALYTICS_VIEW)
nav_item("settings", _("生命周期与字段"), "console:lifecycle", Action.LIFECYCLE_MANAGE)
nav_item("settings", _("组织架构"), "console:org", Action.ORG_VIEW)
nav_item("settings", _("企业微信"), "console:wecom", Action.SETTINGS_MANAGE)
nav_item("settings", _("事件健康"), "console:events", Action.EVENTS_VIEW)
nav_item("settings", _("Webhook"), "console:webhooks", Action.WEBHOOKS_MANAGE)
nav_item("settings", _("API 令牌"), "console:tokens", Action.TOKENS_MANAGE)
nav_item("settings", _("审计日志"), "console:audit", Action.AUDIT_VIEW)
