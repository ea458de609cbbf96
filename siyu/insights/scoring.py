"""Pure scoring functions (numpy): the engagement model, RFM scores and segments, expected
repurchase dates. docs/insights.md explains the models and how they are calibrated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import rankdata

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

HALF_LIVES = (7.0, 14.0, 30.0, 60.0, 90.0, 180.0)  # days, the calibration grid
DEFAULT_HALF_LIFE = 30.0
WINDOW_DAYS = 30.0  # "engaged" = interacts at least once in the next 30 days
MIN_CALIBRATION_CUSTOMERS = 50
LOOKBACK_HALF_LIVES = 8  # events older than 8 half-lives weigh < 0.4 %: not read at all


@dataclass(frozen=True)
class Engagement:
    """P(engaged) from the decayed interaction score. Calibrated: a logistic curve in
    log(score) fitted on a hold-out window. Default (too little data): the decayed count read as
    a Poisson rate (count ÷ the kernel's integral, half-life / ln 2) over the next window."""

    half_life: float
    intercept: float | None = None
    slope: float | None = None
    log_loss: float | None = None  # on the hold-out window

    def probability(self, score: FloatArray) -> FloatArray:
        if self.intercept is None or self.slope is None:
            rate = score * np.log(2.0) / self.half_life
            return -np.expm1(-rate * WINDOW_DAYS)
        return expit(self.intercept + self.slope * _feature(score))


def _feature(score: FloatArray) -> FloatArray:
    # Scores below the weight of an 8-half-lives-old event are "no recent interaction".
    return np.log(score + 2.0**-LOOKBACK_HALF_LIVES)


def decayed_scores(
    customer: IntArray, day: FloatArray, n: int, at: float, half_life: float
) -> FloatArray:
    """Per customer: sum of 0.5 ** (age / half_life) over their interactions up to ``at``."""
    seen = day <= at
    weights = np.exp2(-(at - day[seen]) / half_life)
    return np.bincount(customer[seen], weights=weights, minlength=n)


def _logistic_fit(z: FloatArray, y: NDArray[np.bool_]) -> tuple[float, float, float]:
    """(intercept, slope, mean log loss) of the maximum-likelihood logistic curve y ~ z."""
    target = y.astype(np.float64)

    def loss(beta: FloatArray) -> tuple[float, FloatArray]:
        eta = beta[0] + beta[1] * z
        # log(1 + e^eta) - y * eta, stably.
        value = np.logaddexp(0.0, eta) - target * eta
        residual = expit(eta) - target
        return float(value.mean()), np.array([residual.mean(), (residual * z).mean()])

    result = minimize(loss, np.zeros(2), jac=True, method="BFGS")
    return float(result.x[0]), float(result.x[1]), float(result.fun)


def calibrate_engagement(
    customer: IntArray, day: FloatArray, first_day: FloatArray, now: float
) -> Engagement:
    """Pick the half-life (and logistic curve) that best predicts the last window from the
    history before it.

    Customers known before the cutoff (now - window) are scored at the cutoff with each
    half-life; the outcome is whether they interacted in (cutoff, now]. For each half-life a
    logistic curve in log(score) is fitted; the lowest log loss wins. Too little data (or an
    outcome all alike) keeps the stated default half-life and the Poisson reading.
    """
    cutoff = now - WINDOW_DAYS
    known = first_day <= cutoff
    n = len(first_day)
    outcome = np.bincount(customer[(day > cutoff) & (day <= now)], minlength=n)[:n] > 0
    y = outcome[known]
    if known.sum() < MIN_CALIBRATION_CUSTOMERS or y.all() or not y.any():
        return Engagement(DEFAULT_HALF_LIFE)
    fits = []
    for half_life in HALF_LIVES:
        score = decayed_scores(customer, day, n, cutoff, half_life)[known]
        intercept, slope, loss = _logistic_fit(_feature(score), y)
        fits.append(Engagement(half_life, intercept, slope, loss))
    return min(fits, key=lambda fit: fit.log_loss or 0.0)


def quintile(values: FloatArray) -> IntArray:
    """Scores 1..5 by rank (ties share their average rank); higher value, higher score."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    pct = rankdata(values, method="average") / len(values)
    return np.clip(np.ceil(pct * 5), 1, 5).astype(np.int64)


def rfm_segments(recency_days: FloatArray, purchases: FloatArray, spend: FloatArray) -> list[str]:
    """The eight classic groups: each of R, F, M above or below the buyers' average."""
    names = {
        (True, True, True): "champion",
        (True, False, True): "develop",
        (False, True, True): "keep",
        (False, False, True): "win_back",
        (True, True, False): "loyal",
        (True, False, False): "new",
        (False, True, False): "fading",
        (False, False, False): "lost",
    }
    if len(recency_days) == 0:
        return []
    recent = recency_days <= recency_days.mean()
    frequent = purchases > purchases.mean()
    big = spend > spend.mean()
    return [
        names[(bool(r), bool(f), bool(m))] for r, f, m in zip(recent, frequent, big, strict=True)
    ]


def repurchase_days(first: FloatArray, last: FloatArray, purchases: FloatArray) -> FloatArray:
    """Expected next purchase (day number): last purchase + the customer's own mean interval;
    NaN for customers with a single purchase (no interval of their own)."""
    repeat = purchases > 1
    interval = np.divide(last - first, purchases - 1, out=np.full_like(last, np.nan), where=repeat)
    return last + interval
