from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TeamConfig(AppConfig):
    name = "siyu.team"
    verbose_name = _("账号资产与团队")
