"""Events of the import app."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

CUSTOMER_IMPORTED = event_type("customer.imported", _("客户通过导入创建或更新"))
