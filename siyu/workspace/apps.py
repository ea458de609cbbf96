from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkspaceConfig(AppConfig):
    name = "siyu.workspace"
    verbose_name = _("员工工作台")
