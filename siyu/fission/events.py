"""Fission events on the customer's timeline: joined a campaign, came through one, was rewarded."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

FISSION_JOINED = event_type("fission.joined", _("参加裂变活动"))
FISSION_INVITED = event_type("fission.invited", _("通过裂变海报添加"))
FISSION_REWARDED = event_type("fission.rewarded", _("获得裂变奖励"))
