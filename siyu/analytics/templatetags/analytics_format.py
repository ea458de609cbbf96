"""Number formats of the analytics pages: undefined values show as "—", never as 0 or an error."""

from django import template

register = template.Library()
DASH = "—"


@register.filter
def percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


@register.filter
def yuan(fen: float | None) -> str:
    return DASH if fen is None else f"¥{fen / 100:,.2f}"


@register.filter
def count(value: int | None) -> str:
    return DASH if value is None else str(value)
