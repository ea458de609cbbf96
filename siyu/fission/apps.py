from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FissionConfig(AppConfig):
    name = "siyu.fission"
    verbose_name = _("裂变活动")

    def ready(self) -> None:
        from siyu.analytics.sources import model_names, source_names
        from siyu.fission.models import Campaign

        # Reports name each campaign, not "裂变活动 #7" (analytics never imports this app).
        source_names("fx")(lambda ids: model_names(Campaign, ids))
