from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FissionConfig(AppConfig):
    name = "siyu.fission"
    verbose_name = _("裂变活动")
