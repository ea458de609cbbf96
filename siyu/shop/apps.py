from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShopConfig(AppConfig):
    name = "siyu.shop"
    verbose_name = _("商城与订单")
