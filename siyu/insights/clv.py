"""Buy-till-you-die models, pure numpy/scipy: BG/NBD (Fader, Hardie & Lee 2005) for purchase
counts and P(alive), Gamma-Gamma (Fader & Hardie 2013) for spend per purchase.

Everything is vectorised over customers. Purchase histories are summarised the way the papers do:
purchases on the same day are one transaction, the first purchase starts the clock and is not
counted, so per customer ``x`` = repeat purchases, ``t_x`` = time of the last one and ``T`` = time
observed, both measured from the first purchase. Likelihoods are computed in log space from the
closed forms (no hypergeometric function), maximised over log-parameters with analytic gradients.
Identical (x, t_x, T) rows are fitted once with a weight, so day-granular data of millions of
customers collapses to a few hundred thousand patterns at most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

FloatArray = NDArray[np.float64]

# Log-parameters stay within +-LOG_BOUND so a line search cannot overflow exp().
LOG_BOUND = 15.0


class ModelError(ValueError):
    """The data cannot support the model (too few customers, no repeat buyers, ...)."""


@dataclass(frozen=True)
class Summary:
    """Per-customer recency/frequency/monetary summary in one time unit."""

    customers: NDArray[np.int64]  # index into the caller's customer list
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    monetary: FloatArray  # mean spend of repeat transactions; 0 where x == 0


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T) (Fader, Hardie & Lee 2008 note)."""
        x, t_x, T = _arrays(x, t_x, T)
        return expit(-_log_death_odds(self, x, t_x, T))

    def expected_purchases(
        self, horizon: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[purchases in (T, T + horizon] | history], equation (10) of the BG/NBD paper."""
        x, t_x, T = _arrays(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = horizon / (alpha + T + horizon)
        growth = 1.0 - ((alpha + T) / (alpha + T + horizon)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1.0, z
        )
        return (a + b + x - 1.0) / (a - 1.0) * growth * expit(-_log_death_odds(self, x, t_x, T))

    def expected_purchases_new(self, horizon: float) -> float:
        """E[purchases in (0, horizon]] of a customer who just made a first purchase."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = horizon / (alpha + horizon)
        factor = 1.0 - (alpha / (alpha + horizon)) ** r * hyp2f1(r, b, a + b - 1.0, z)
        return float((a + b - 1.0) / (a - 1.0) * factor)


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float

    def expected_spend(self, x: ArrayLike, monetary: ArrayLike) -> FloatArray:
        """E[spend per transaction | x, mean spend]; the population mean where x == 0."""
        x, monetary = _arrays(x, monetary)
        p, q, gamma = self.p, self.q, self.gamma
        return (p * (gamma + x * monetary)) / (p * x + q - 1.0)


def _arrays(*values: ArrayLike) -> tuple[FloatArray, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def _dot(u: FloatArray, v: FloatArray) -> float:
    # Not ``u @ v``: OpenBLAS threads long dot products, and its spinning worker threads slow
    # the rest of the fit several-fold on a busy machine; einsum's own loop does not thread.
    return float(np.einsum("i,i->", u, v))


def _log_death_odds(model: BgNbd, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """log P(died at t_x | history) - log P(alive at T | history); -inf without repeats."""
    repeat = x > 0
    safe_b = np.where(repeat, model.b + x - 1.0, 1.0)
    odds = (
        np.log(model.a)
        - np.log(safe_b)
        + (model.r + x) * (np.log(model.alpha + T) - np.log(model.alpha + t_x))
    )
    return np.where(repeat, odds, -np.inf)


# --- summaries ---------------------------------------------------------------------------------


def summarise(
    *,
    customer_index: NDArray[np.int64],
    day: NDArray[np.int64],
    amount: FloatArray | None,
    end_day: int,
    days_per_unit: float,
) -> Summary:
    """Summarise transactions (customer index, day number, amount) observed up to ``end_day``.

    Same-day transactions merge into one (amounts add up); customers whose first purchase is after
    ``end_day`` are left out, as are transactions after it.
    """
    keep = day <= end_day
    cust, day = customer_index[keep], day[keep]
    money = np.zeros(len(cust)) if amount is None else amount[keep]
    if len(cust) == 0:
        return Summary(np.zeros(0, np.int64), *(np.zeros(0) for _ in range(4)))
    order = np.lexsort((day, cust))
    cust, day, money = cust[order], day[order], money[order]
    starts = np.flatnonzero(np.r_[True, (cust[1:] != cust[:-1]) | (day[1:] != day[:-1])])
    cust, day, money = cust[starts], day[starts], np.add.reduceat(money, starts)
    first = np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]])
    last = np.r_[first[1:], len(cust)] - 1
    x = (last - first).astype(np.float64)
    total = np.add.reduceat(money, first)
    repeat_spend = total - money[first]
    monetary = np.divide(repeat_spend, x, out=np.zeros_like(x), where=x > 0)
    return Summary(
        customers=cust[first],
        x=x,
        t_x=(day[last] - day[first]) / days_per_unit,
        T=(end_day - day[first]) / days_per_unit,
        monetary=monetary,
    )


# --- BG/NBD ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """Likelihood inputs, prepared once per fit. Purchase counts are whole numbers with few
    distinct values, so the special functions of ``x`` are evaluated per distinct value
    (``levels``) and gathered per row (``level``): they are most of a likelihood's cost."""

    x: FloatArray
    levels: FloatArray
    level: NDArray[np.intp]
    weights: FloatArray
    level_weights: FloatArray  # total weight of the rows at each level

    @classmethod
    def of(cls, x: FloatArray, weights: FloatArray | None = None) -> _Rows:
        levels, level = np.unique(x, return_inverse=True)
        w = np.ones_like(x) if weights is None else weights
        return cls(x, levels, level, w, np.bincount(level, weights=w, minlength=len(levels)))


def bgnbd_log_likelihood(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, T: FloatArray
) -> float:
    """Total BG/NBD log-likelihood of the histories at (r, alpha, a, b)."""
    value, _ = _bgnbd_ll_and_gradient(np.log(params), _Rows.of(x), t_x, T)
    return value


def _bgnbd_ll_and_gradient(
    log_params: FloatArray, rows: _Rows, t_x: FloatArray, T: FloatArray
) -> tuple[float, FloatArray]:
    r, alpha, a, b = np.exp(log_params)
    x, lv, at, w, lw = rows.x, rows.levels, rows.level, rows.weights, rows.level_weights
    # L = Gamma-Poisson part x Beta part x [alive-at-T term + died-at-t_x term]; the first two
    # depend on x only (per level), the bracket on every row.
    part = gammaln(r + lv) - gammaln(r) + gammaln(b + lv) - gammaln(b)
    part += gammaln(a + b) - gammaln(a + b + lv)
    repeat = lv > 0
    safe_b = np.where(repeat, b + lv - 1.0, 1.0)
    log_odds = np.where(repeat, np.log(a) - np.log(safe_b), -np.inf)  # a / (b + x - 1)
    log_alive_t = np.log(alpha + T)
    log_died_t = np.log(alpha + t_x)
    alive = -(r + x) * log_alive_t
    died = log_odds[at] - (r + x) * log_died_t
    mix = np.logaddexp(alive, died)
    w_died = np.exp(died - mix)  # posterior weight of the "died at t_x" branch
    ww_died = w * w_died
    ww_alive = w - ww_died
    died_by_level = np.bincount(at, weights=ww_died, minlength=len(lv))
    ab = digamma(a + b) - digamma(a + b + lv)
    gradient = np.array(
        [
            r
            * (
                _dot(lw, digamma(r + lv) - digamma(r))
                + np.log(alpha) * w.sum()
                - _dot(ww_alive, log_alive_t)
                - _dot(ww_died, log_died_t)
            ),
            r * w.sum()
            - alpha * _dot(ww_alive, (r + x) / (alpha + T))
            - alpha * _dot(ww_died, (r + x) / (alpha + t_x)),
            a * _dot(lw, ab) + died_by_level.sum(),
            b * (_dot(lw, ab + digamma(b + lv) - digamma(b)) - _dot(died_by_level, 1.0 / safe_b)),
        ]
    )
    ll = _dot(lw, part) + r * np.log(alpha) * w.sum() + _dot(w, mix)
    return float(ll), gradient


def _compress(*columns: FloatArray) -> tuple[tuple[FloatArray, ...], FloatArray]:
    """Distinct rows and their counts. Each column is coded by its distinct values and the codes
    combined into one integer key: a 1-d sort, much faster than ``np.unique(axis=0)``. Rows
    too varied for a 63-bit key are not compressed (they would hardly repeat anyway)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    size = 1
    for column in columns:
        distinct, code = np.unique(column, return_inverse=True)
        size *= len(distinct)
        if size >= 2**62:
            return columns, np.ones(len(key))
        key = key * len(distinct) + code
    _keys, first, counts = np.unique(key, return_index=True, return_counts=True)
    return tuple(column[first] for column in columns), counts.astype(np.float64)


Objective = Callable[[FloatArray], tuple[float, FloatArray]]


def _maximise(objective: Objective, start: FloatArray, scale: float) -> FloatArray:
    """Maximise over log-parameters with BFGS. The search runs on u with
    log(theta) = B * tanh(u / B): the identity near 0, never beyond +-B, so a degenerate data set
    (e.g. no heterogeneity: a, b -> infinity) ends on a flat gradient instead of an overflow."""

    def negative(u: FloatArray) -> tuple[float, FloatArray]:
        squashed = np.tanh(u / LOG_BOUND)
        value, gradient = objective(LOG_BOUND * squashed)
        return -value / scale, -gradient * (1.0 - squashed**2) / scale

    with np.errstate(over="ignore", under="ignore"):
        result = minimize(
            negative, start, jac=True, method="BFGS", options={"maxiter": 1000, "gtol": 1e-9}
        )
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise ModelError("the likelihood could not be maximised")
    return np.asarray(LOG_BOUND * np.tanh(result.x / LOG_BOUND))


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the histories (x, t_x, T)."""
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) < 2 or not np.any(x > 0):
        raise ModelError("BG/NBD needs at least two customers and some repeat purchases")
    if np.any(T <= 0):
        raise ModelError("every customer needs a positive observation time T")
    # Fit in units of the longest observation so alpha starts near 1, then convert back.
    unit = float(T.max())
    (cx, ct, cT), weights = _compress(x, t_x / unit, T / unit)
    rows = _Rows.of(cx, weights)
    log_params = _maximise(
        lambda p: _bgnbd_ll_and_gradient(p, rows, ct, cT), np.zeros(4), float(len(x))
    )
    r, alpha, a, b = np.exp(log_params)
    alpha *= unit
    ll = bgnbd_log_likelihood((r, alpha, a, b), x, t_x, T)
    return BgNbd(r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=ll)


# --- Gamma-Gamma -------------------------------------------------------------------------------


def gamma_gamma_log_likelihood(
    params: tuple[float, float, float], x: FloatArray, monetary: FloatArray
) -> float:
    """Total log-likelihood of the mean spends of repeat buyers at (p, q, gamma)."""
    value, _ = _gg_ll_and_gradient(np.log(params), _Rows.of(x), np.log(monetary), monetary)
    return value


def _gg_ll_and_gradient(
    log_params: FloatArray, rows: _Rows, log_m: FloatArray, m: FloatArray
) -> tuple[float, FloatArray]:
    p, q, gamma = np.exp(log_params)
    x, lv, lw = rows.x, rows.levels, rows.level_weights
    plv = p * lv
    log_lv = np.log(lv)
    shared = digamma(plv + q)
    part = gammaln(plv + q) - gammaln(plv) - gammaln(q) + plv * log_lv
    total = gamma + x * m
    log_total = np.log(total)
    px = p * x
    ll = (
        _dot(lw, part)
        + q * np.log(gamma) * lw.sum()
        + _dot(px - 1.0, log_m)
        - _dot(px + q, log_total)
    )
    gradient = np.array(
        [
            p * (_dot(lw, lv * (shared - digamma(plv) + log_lv)) + _dot(x, log_m - log_total)),
            q * (_dot(lw, shared - digamma(q)) + np.log(gamma) * lw.sum() - log_total.sum()),
            gamma * (q * lw.sum() / gamma - ((px + q) / total).sum()),
        ]
    )
    return float(ll), gradient


def fit_gamma_gamma(x: ArrayLike, monetary: ArrayLike) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from repeat buyers (x > 0, mean spend > 0)."""
    x, m = _arrays(x, monetary)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 2:
        raise ModelError("Gamma-Gamma needs at least two repeat buyers with positive spend")
    # Fit in units of the mean spend so gamma starts near 1, then convert back.
    unit = float(m.mean())
    rows, scaled = _Rows.of(x), m / unit
    log_scaled = np.log(scaled)
    log_params = _maximise(
        lambda p: _gg_ll_and_gradient(p, rows, log_scaled, scaled), np.zeros(3), float(len(x))
    )
    p, q, gamma = np.exp(log_params)
    gamma *= unit
    ll = gamma_gamma_log_likelihood((p, q, gamma), x, m)
    return GammaGamma(p=float(p), q=float(q), gamma=float(gamma), log_likelihood=ll)


def lifetime_value(
    bgnbd: BgNbd,
    spend: FloatArray,
    *,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    periods: int,
    period_length: float,
    discount_rate: float,
) -> FloatArray:
    """Discounted expected spend over ``periods`` periods: sum of expected purchases in each
    period times the expected spend per purchase, discounted per period."""
    value = np.zeros_like(x)
    previous = np.zeros_like(x)
    for k in range(1, periods + 1):
        cumulative = bgnbd.expected_purchases(k * period_length, x, t_x, T)
        value += (cumulative - previous) * spend / (1.0 + discount_rate) ** k
        previous = cumulative
    return value
