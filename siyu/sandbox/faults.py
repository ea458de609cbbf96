"""Switchable misbehaviour, so Siyu is tested against the WeCom that loses, repeats and delays.

All randomness comes from one seeded generator: a run with the same seed and inputs makes the
same choices.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Faults:
    # Callbacks
    drop_rate: float = 0.0  # share of callbacks never delivered
    duplicate_rate: float = 0.0  # share delivered twice
    delay_seconds: float = 0.0  # extra delay before each delivery
    reorder_window: int = 0  # hold this many callbacks and deliver them shuffled
    # API answers
    rate_limit_rate: float = 0.0  # answer 45009
    busy_rate: float = 0.0  # answer errcode -1
    server_error_rate: float = 0.0  # answer HTTP 502
    timeout_rate: float = 0.0  # hold the answer for timeout_seconds (the client gives up)
    timeout_after_rate: float = 0.0  # apply the call, then hold the answer (ambiguous outcome)
    timeout_seconds: float = 6.0
    paths: list[str] = field(default_factory=list)  # only these API paths (prefixes); empty = all
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 (simulation)
        self._lock = threading.Lock()

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._rng.shuffle(items)

    def applies_to(self, path: str) -> bool:
        return not self.paths or any(path.startswith(p) for p in self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        faults = cls(**data)
        for name in (
            "drop_rate",
            "duplicate_rate",
            "rate_limit_rate",
            "busy_rate",
            "server_error_rate",
            "timeout_rate",
            "timeout_after_rate",
        ):
            value = getattr(faults, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1")
        if faults.delay_seconds < 0 or faults.timeout_seconds < 0 or faults.reorder_window < 0:
            raise ValueError("delays and windows cannot be negative")
        return faults


@dataclass
class Limits:
    """WeCom's documented per-corp, per-API frequency limits (tighten them for tests)."""

    per_minute: int = 10_000
    per_hour: int = 150_000
    concurrency: int = 0  # concurrent calls per corp and API before 45033; 0 = no gate
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)  # path → {"per_minute": n}

    def for_path(self, path: str) -> tuple[int, int]:
        override = self.overrides.get(path, {})
        return int(override.get("per_minute", self.per_minute)), int(
            override.get("per_hour", self.per_hour)
        )
