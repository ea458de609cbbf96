"""Mass-send events. ``masssend.sent``: a staff member confirmed their task in WeCom (no
customer); ``masssend.delivered``: WeCom reports the message reached a customer (customer
timeline)."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

MASSSEND_SENT = event_type("masssend.sent", _("员工已发送群发"))
MASSSEND_DELIVERED = event_type("masssend.delivered", _("客户收到群发"))
