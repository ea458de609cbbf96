"""Radar events: a tracked piece was opened, read for a while, or reached someone via a forward."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

CONTENT_OPENED = event_type("content.opened", _("打开了内容"))
CONTENT_READ = event_type("content.read", _("阅读了内容"))
CONTENT_FORWARDED = event_type("content.forwarded", _("转发了内容"))
