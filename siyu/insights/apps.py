from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InsightsConfig(AppConfig):
    name = "siyu.insights"
    verbose_name = _("客户洞察")
