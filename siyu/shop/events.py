"""Shop events on the customer's timeline: viewed a product, ordered, paid, refunded …"""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

PRODUCT_VIEWED = event_type("shop.product_viewed", _("浏览商品"))
ORDER_CREATED = event_type("order.created", _("下单"))
ORDER_PAID = event_type("order.paid", _("付款"))
ORDER_REFUNDED = event_type("order.refunded", _("退款"))
ORDER_CANCELLED = event_type("order.cancelled", _("取消订单"))
CART_ABANDONED = event_type("cart.abandoned", _("放弃购物车"))
