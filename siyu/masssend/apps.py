from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MassSendConfig(AppConfig):
    name = "siyu.masssend"
    label = "masssend"
    verbose_name = _("群发")
