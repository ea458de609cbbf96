"""Welcome-lane events, and the handler for adds through a channel code (state ``ch:<pk>``)."""

from typing import Any

from django.utils.translation import gettext_lazy as _

from siyu.channels.state import state_handler
from siyu.core.events import event_type

WELCOME_SENT = event_type("welcome.sent", _("欢迎语已发送"))
WELCOME_FAILED = event_type("welcome.failed", _("欢迎语未发送"))


@state_handler("ch")
def on_channel_add(**kwargs: Any) -> None:
    from siyu.channels.services import channel_add_handle

    channel_add_handle(**kwargs)
