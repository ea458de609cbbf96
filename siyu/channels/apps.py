from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsConfig(AppConfig):
    name = "siyu.channels"
    verbose_name = _("渠道活码")

    def ready(self) -> None:
        from siyu.analytics.sources import model_names, source_names
        from siyu.channels.models import ChannelCode

        # Reports name each code, not "渠道码 #42" (analytics never imports this app).
        source_names("ch")(lambda ids: model_names(ChannelCode, ids))
