from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GroupChatsConfig(AppConfig):
    name = "siyu.groupchats"
    verbose_name = _("客户群")
