from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TransfersConfig(AppConfig):
    name = "siyu.transfers"
    verbose_name = _("客户继承")
