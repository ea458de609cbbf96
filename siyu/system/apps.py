from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SystemConfig(AppConfig):
    """Operating Siyu itself: event log health, dead letters; later the WeCom inbox."""

    name = "siyu.system"
    verbose_name = _("系统")
