"""SOP events: a customer entered a journey, reached a step, reached its goal."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

SOP_ENROLLED = event_type("sop.enrolled", _("进入 SOP"))
SOP_STEP_REACHED = event_type("sop.step_reached", _("到达 SOP 步骤"))
SOP_CONVERTED = event_type("sop.converted", _("SOP 达成目标"))
# The "outbound webhook" action: endpoints subscribed to this type receive it, signed and retried.
SOP_WEBHOOK = event_type("sop.webhook", _("SOP 外发通知"))
