from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WeComConfig(AppConfig):
    name = "siyu.wecom"
    verbose_name = _("企业微信网关")

    def ready(self) -> None:
        # Connects the receiver's tenant cache to Tenant saves, whether or not a URL was served.
        from siyu.wecom.callback import receiver  # noqa: F401
