"""Insights events: a customer became at risk of churning (SOPs trigger on it); a member
recorded why a customer left."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

CUSTOMER_AT_RISK = event_type("customer.at_risk", _("客户有流失风险"))
CHURN_REASON_RECORDED = event_type("customer.churn_reason", _("记录流失原因"))
