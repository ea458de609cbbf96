"""Errors of the segment language. Each carries the character position it refers to, so the
API, the console and the command can point at the mistake with a caret."""

import unicodedata

from siyu.core.errors import InvalidInput


class SegmentError(InvalidInput):
    """An expression that cannot be evaluated: bad syntax, or a tag/field/stage/member/event
    type the tenant does not have. ``position`` is a 0-based character offset."""

    code = "invalid_segment"

    def __init__(self, message: str, *, expression: str, position: int) -> None:
        position = max(0, min(position, len(expression)))
        super().__init__(
            f"{message} (at position {position})",
            details={"position": position, "caret": caret_lines(expression, position)},
        )
        self.reason = message
        self.expression = expression
        self.position = position

    @property
    def caret(self) -> str:
        return caret_lines(self.expression, self.position)


class SegmentSyntaxError(SegmentError):
    code = "segment_syntax"


def caret_lines(expression: str, position: int) -> str:
    """The expression and a ``^`` under ``position``; wide (CJK) characters take two columns so
    the caret lines up in a terminal and in a monospace <pre>."""
    pad = sum(2 if _is_wide(ch) else 1 for ch in expression[:position])
    return f"{expression}\n{' ' * pad}^"


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in {"W", "F"}
