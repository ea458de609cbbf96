"""BG/NBD + Gamma-Gamma fit on 1,000,000 synthetic customers: Siyu's fitter vs lifetimes.

Customers are simulated from known parameters (those published for CDNOW, converted to days):
first purchases spread over a year, purchase days whole numbers (as Siyu's summaries are),
observation ends at day 365. Both fitters get the same per-customer arrays (x, t_x, T) and,
for Gamma-Gamma, the repeat buyers' mean spends; lifetimes' BG/NBD is also given the distinct
(x, t_x, T) patterns with their counts as weights. Each fit is timed once, in this process. The
log-likelihoods of both fits are evaluated with the same function and compared.

    python bench/clv_fit.py [--customers N] [--seed S] [--no-lifetimes]

lifetimes (0.11.3) is optional: ``pip install lifetimes==0.11.3`` (a benchmark-only install).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import scipy

from siyu.insights.clv import (
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)

TRUE_BGNBD = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}  # α in days
TRUE_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
HORIZON = 365


def simulate(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE_BGNBD["r"], 1.0 / TRUE_BGNBD["alpha"], n)
    p = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], n)
    first = rng.integers(0, HORIZON, n)
    T = (HORIZON - first).astype(np.float64)
    x = np.zeros(n)
    last = np.zeros(n)
    clock = np.zeros(n)
    alive = T > 0
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1.0 / lam[idx])
        bought = idx[clock[idx] <= T[idx]]
        x[bought] += 1
        last[bought] = clock[bought]
        alive[idx] = False
        alive[bought] = rng.random(len(bought)) >= p[bought]
    t_x = np.floor(last)  # purchase days are whole days
    keep = T > 0
    x, t_x, T = x[keep], t_x[keep], T[keep]
    # Repeat buyers' mean spend: x transactions of Gamma(p, ν), ν ~ Gamma(q, γ).
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["gamma"], len(x))
    repeat = x > 0
    m = np.zeros(len(x))
    m[repeat] = rng.gamma(TRUE_GG["p"] * x[repeat], 1.0 / (nu[repeat] * x[repeat]))
    return x, t_x, T, m


def timed(label: str, func):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:9.2f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2005)
    parser.add_argument("--no-lifetimes", action="store_true")
    args = parser.parse_args()

    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}"
    )
    (x, t_x, T, m), _ = timed(
        f"simulate {args.customers:,} customers", lambda: simulate(args.customers, args.seed)
    )
    repeat = x > 0
    patterns = len(np.unique(np.column_stack([x, t_x, T]), axis=0))
    print(
        f"customers {len(x):,}, repeat buyers {int(repeat.sum()):,}, "
        f"distinct (x, t_x, T) {patterns:,}"
    )

    ours, ours_s = timed("siyu BG/NBD fit", lambda: fit_bgnbd(x, t_x, T))
    ours_gg, ours_gg_s = timed(
        "siyu Gamma-Gamma fit", lambda: fit_gamma_gamma(x[repeat], m[repeat])
    )
    print(
        f"siyu BG/NBD   r={ours.r:.5f} alpha={ours.alpha:.4f} a={ours.a:.5f} b={ours.b:.5f} "
        f"LL={ours.log_likelihood:.6f}"
    )
    print(
        f"siyu GG       p={ours_gg.p:.4f} q={ours_gg.q:.4f} gamma={ours_gg.gamma:.4f} "
        f"LL={ours_gg.log_likelihood:.6f}"
    )
    print(f"true          {TRUE_BGNBD} {TRUE_GG}")
    if args.no_lifetimes:
        return
    try:
        from lifetimes import BetaGeoFitter, GammaGammaFitter
    except ImportError as exc:
        print(f"lifetimes not available ({exc}); install lifetimes==0.11.3 to compare")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg, bg_s = timed("lifetimes BetaGeoFitter.fit", lambda: BetaGeoFitter().fit(x, t_x, T))
        gg, gg_s = timed(
            "lifetimes GammaGammaFitter.fit",
            lambda: GammaGammaFitter().fit(x[repeat], m[repeat]),
        )
        # lifetimes can also take the distinct (x, t_x, T) patterns with counts as weights,
        # the compression siyu's fitter does inside its timing.
        patterns_of = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        (px, pt, pT), counts = patterns_of[0].T, patterns_of[1]
        bgw, bgw_s = timed(
            "lifetimes BetaGeoFitter.fit, weights",
            lambda: BetaGeoFitter().fit(px, pt, pT, weights=counts),
        )
    theirs = tuple(float(bg.params_[k]) for k in ("r", "alpha", "a", "b"))
    theirs_w = tuple(float(bgw.params_[k]) for k in ("r", "alpha", "a", "b"))
    rel_w = abs(ours.log_likelihood - bgnbd_log_likelihood(theirs_w, x, t_x, T)) / abs(
        ours.log_likelihood
    )
    theirs_ll = bgnbd_log_likelihood(theirs, x, t_x, T)
    theirs_gg = tuple(float(gg.params_[k]) for k in ("p", "q", "v"))
    theirs_gg_ll = gamma_gamma_log_likelihood(theirs_gg, x[repeat], m[repeat])
    print(
        f"lifetimes BG/NBD r={theirs[0]:.5f} alpha={theirs[1]:.4f} a={theirs[2]:.5f} "
        f"b={theirs[3]:.5f} LL={theirs_ll:.6f}"
    )
    print(
        f"lifetimes GG     p={theirs_gg[0]:.4f} q={theirs_gg[1]:.4f} gamma={theirs_gg[2]:.4f} "
        f"LL={theirs_gg_ll:.6f}"
    )
    rel = abs(ours.log_likelihood - theirs_ll) / abs(theirs_ll)
    rel_gg = abs(ours_gg.log_likelihood - theirs_gg_ll) / abs(theirs_gg_ll)
    print(
        f"BG/NBD: lifetimes/siyu time {bg_s / ours_s:.1f}x, LL relative difference {rel:.2e} "
        f"(siyu {'higher' if ours.log_likelihood >= theirs_ll else 'lower'})"
    )
    print(
        f"BG/NBD, lifetimes on weighted patterns: lifetimes/siyu time {bgw_s / ours_s:.1f}x, "
        f"LL relative difference {rel_w:.2e}"
    )
    print(
        f"Gamma-Gamma: lifetimes/siyu time {gg_s / ours_gg_s:.1f}x, LL relative difference "
        f"{rel_gg:.2e} (siyu {'higher' if ours_gg.log_likelihood >= theirs_gg_ll else 'lower'})"
    )


if __name__ == "__main__":
    main()
