"""The registry of dashboard metrics a goal can be set on, each read from the daily rollup as a
sum of metric deltas over a window, or a ratio of two such sums."""

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Metric:
    key: str
    label: str | Promise
    numerator: tuple[str, ...]  # MetricDay metrics summed
    denominator: tuple[str, ...] = ()  # set: the value is numerator / denominator
    minus: tuple[str, ...] = ()  # subtracted from the numerator
    unit: str = ""  # "fen", "%" or "" (a count)

    @property
    def names(self) -> set[str]:
        return {*self.numerator, *self.denominator, *self.minus}

    def value(self, sums: dict[str, int]) -> float | None:
        """The metric from summed deltas; None for a ratio without a base."""
        top = sum(sums.get(n, 0) for n in self.numerator) - sum(sums.get(n, 0) for n in self.minus)
        if not self.denominator:
            return float(top)
        base = sum(sums.get(n, 0) for n in self.denominator)
        return top / base if base else None


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("new_customers", _("新增客户"), ("new_customers",)),
        Metric("net_customers", _("净增客户"), ("customers",)),
        Metric("intent", _("新增意向客户"), ("funnel:intent",)),
        Metric("paid", _("新增付费客户"), ("funnel:paid",)),
        Metric("repeat", _("新增复购客户"), ("funnel:repeat",)),
        Metric("gmv", _("GMV"), ("gmv_fen",), unit="fen"),
        Metric("intent_rate", _("意向转化率"), ("funnel:intent",), ("funnel:added",), unit="%"),
        Metric("paid_rate", _("付费转化率"), ("funnel:paid",), ("funnel:added",), unit="%"),
        Metric("active", _("活跃客户（人·天）"), ("active",)),
    )
}
