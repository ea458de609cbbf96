"""Customer events. Every change to a customer's relations, tags or groups is one of these."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

CUSTOMER_ADDED = event_type("customer.added", _("客户添加了员工"))
CUSTOMER_HALF_ADDED = event_type("customer.half_added", _("客户添加了员工（待通过）"))
CUSTOMER_DELETED_STAFF = event_type("customer.deleted_staff", _("客户删除了员工"))
STAFF_DELETED_CUSTOMER = event_type("customer.deleted_by_staff", _("员工删除了客户"))
CUSTOMER_UPDATED = event_type("customer.updated", _("客户资料或备注变更"))
CUSTOMER_TRANSFER_FAILED = event_type("customer.transfer_failed", _("客户继承失败"))
CUSTOMER_TAGS_CHANGED = event_type("customer.tags_changed", _("客户标签变更"))
CUSTOMER_JOINED_GROUP = event_type("customer.joined_group", _("客户入群"))
CUSTOMER_LEFT_GROUP = event_type("customer.left_group", _("客户退群"))
CUSTOMER_STAGE_CHANGED = event_type("customer.stage_changed", _("生命周期阶段变更"))
CUSTOMER_FIELDS_CHANGED = event_type("customer.fields_changed", _("客户自定义字段变更"))
CUSTOMER_IDENTITY_LINKED = event_type("customer.identity_linked", _("客户身份关联"))
CUSTOMER_MERGED = event_type("customer.merged", _("客户合并"))
CUSTOMER_UNMERGED = event_type("customer.unmerged", _("撤销客户合并"))
CUSTOMER_SPLIT = event_type("customer.split", _("客户拆分"))
