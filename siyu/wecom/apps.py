from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WeComConfig(AppConfig):
    name = "siyu.wecom"
    verbose_name = _("企业微信网关")
