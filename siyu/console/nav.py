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
nav_item("operate", _("内容库"), "console:content", Action.CONTENT_SHARE)
nav_item("operate", _("互动雷达"), "console:content_staff_radar", Action.CONTENT_SHARE)
nav_item("operate", _("员工任务"), "console:workspace_overview", Action.TASKS_OVERVIEW)
nav_item("operate", _("话术库"), "console:workspace_scripts_manage", Action.SCRIPTS_MANAGE)
nav_item("operate", _("SOP"), "console:sops", Action.SOP_MANAGE)
nav_item("operate", _("群发"), "console:masssends", Action.MASS_SEND_MANAGE)
nav_item("convert", _("优惠券"), "console:promotions_coupons", Action.PROMOTIONS_MANAGE)
nav_item("convert", _("拼团"), "console:promotions_groupbuys", Action.PROMOTIONS_MANAGE)
nav_item("convert", _("分销佣金"), "console:promotions_commissions", Action.COMMISSIONS_VIEW)
nav_item("manage", _("客户"), "console:customers", Action.CUSTOMERS_VIEW)
nav_item("manage", _("标签"), "console:tags", Action.TAGS_MANAGE)
nav_item("manage", _("自动打标签"), "console:tag_rules", Action.TAGS_MANAGE)
nav_item("manage", _("标签质检"), "console:tag_quality", Action.TAGS_QUALITY)
nav_item("manage", _("客户分群"), "console:segments", Action.CUSTOMERS_VIEW)
nav_item("manage", _("导入导出"), "console:imports", Action.CUSTOMERS_EXPORT)
nav_item("manage", _("在职继承"), "console:transfers_onjob", Action.TRANSFER_CUSTOMERS)
nav_item("manage", _("离职继承"), "console:transfers_resigned", Action.TRANSFER_CUSTOMERS)
nav_item("manage", _("继承记录"), "console:transfer_jobs", Action.TRANSFER_CUSTOMERS)
nav_item("manage", _("账号资产"), "console:team_assets", Action.ASSETS_VIEW)
nav_item("data", _("团队业绩"), "console:team_performance", Action.PERFORMANCE_VIEW)
nav_item("data", _("经营看板"), "console:dashboard", Action.DASHBOARD_VIEW)
nav_item("data", _("目标"), "console:goals", Action.DASHBOARD_VIEW)
nav_item("data", _("渠道分析"), "console:analytics_channels", Action.ANALYTICS_VIEW)
nav_item("data", _("流失分析"), "console:insights_churn", Action.INSIGHTS_VIEW)
nav_item("data", _("流失预警"), "console:insights_at_risk", Action.INSIGHTS_VIEW)
nav_item("data", _("客户价值"), "console:insights_value", Action.INSIGHTS_VIEW)
nav_item("settings", _("生命周期与字段"), "console:lifecycle", Action.LIFECYCLE_MANAGE)
nav_item("settings", _("组织架构"), "console:org", Action.ORG_VIEW)
nav_item("settings", _("企业微信"), "console:wecom", Action.SETTINGS_MANAGE)
nav_item("settings", _("事件健康"), "console:events", Action.EVENTS_VIEW)
nav_item("settings", _("Webhook"), "console:webhooks", Action.WEBHOOKS_MANAGE)
nav_item("settings", _("API 令牌"), "console:tokens", Action.TOKENS_MANAGE)
nav_item("settings", _("审计日志"), "console:audit", Action.AUDIT_VIEW)
nav_item("convert", _("我的小店"), "console:shop_links", Action.ORDERS_VIEW)
nav_item("convert", _("订单"), "console:shop_orders", Action.ORDERS_VIEW)
nav_item("convert", _("商品"), "console:shop_products", Action.SHOP_MANAGE)
nav_item("settings", _("商城设置"), "console:shop_settings", Action.SHOP_MANAGE)
