"""BG/NBD + Gamma-Gamma: the published estimates on CDNOW through the real ``siyu clv fit``
process, parameter recovery on simulated data, and the command's input validation.

data/CDNOW_sample.txt is the 1/10th CDNOW sample used by Fader, Hardie & Lee (2005) and Fader &
Hardie (2013), as distributed with the lifetimes package (lifetimes/datasets/) and on
brucehardie.com: master id, sample id, date YYYYMMDD, CDs bought, dollars; no header.
"""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from siyu.insights.clv import BgNbd, fit_bgnbd, fit_gamma_gamma, summarise

REPO = Path(__file__).resolve().parents[3]
CDNOW = Path(__file__).parent / "data" / "CDNOW_sample.txt"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "siyu.config.test_settings"}
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "siyu", "clv", "fit", *args],
        capture_output=True,
        cwd=REPO,
        env=env,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_reproduces_the_published_cdnow_estimates() -> None:
    # Calibration: 39 weeks, 1997-01-01 to 1997-09-30; published to the precision asserted here
    # (BG/NBD paper, Table/section 5; Gamma-Gamma note, section 4).
    result = _run(
        "--transactions", str(CDNOW), "--customer-col", "0", "--date-col", "2",
        "--amount-col", "4", "--observation-end", "1997-09-30", "--time-unit", "weeks", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fitted = json.loads(result.stdout)
    assert set(fitted) == {
        "r", "alpha", "a", "b", "bgnbd_log_likelihood",
        "p", "q", "gamma", "gamma_gamma_log_likelihood",
    }  # fmt: skip
    assert {k: round(fitted[k], 3) for k in ("r", "alpha", "a", "b")} == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
    }
    assert round(fitted["bgnbd_log_likelihood"], 1) == -9582.4
    assert {k: round(fitted[k], 2) for k in ("p", "q", "gamma")} == {
        "p": 6.25,
        "q": 3.74,
        "gamma": 15.44,
    }


def test_conditional_expectation_matches_the_paper_example() -> None:
    # The BG/NBD paper's worked example (customer 1: x=2, t_x=30.43, T=38.86 weeks) expects
    # 1.226 purchases in the next 39 weeks under the published parameters.
    model = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    assert round(float(model.expected_purchases(39, [2], [30.43], [38.86])[0]), 3) == 1.226
    assert model.p_alive([0], [0], [38.86])[0] == 1.0


def test_human_output_and_header_columns(tmp_path: Path) -> None:
    lines = ["order,buyer,paid_on,yuan"]
    lines += [
        f"{i},{i % 40},{2024 + i % 2}-0{1 + i % 9}-1{i % 10},{10 + i % 7}" for i in range(600)
    ]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    out = StringIO()
    call_command(
        "clv", "fit", "--transactions", str(path), "--customer-col", "buyer",
        "--date-col", "paid_on", "--amount-col", "yuan", "--time-unit", "days", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert text.startswith("40 customers (40 with repeat purchases), observed until 2025-09")
    assert "BG/NBD       r=" in text
    assert "Gamma-Gamma  p=" in text


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("c d\n1 2024-01-01\n", ["--amount-col", "amount"], "column 'amount' not in the header"),
        ("c d\n1 2024-01-01\n1 yesterday\n", [], "line 3: bad date 'yesterday'"),
        ("c,d,amount\n1,2024-01-01,5\n1,2024-02-01,-3\n", ["--amount-col", "amount"], "negative"),
        ("c d\n1 01/02/2024\n", ["--date-format", "%Y/%m/%d"], "line 2: bad date"),
        ("c d\n1 2024-01-01\n", ["--observation-end", "June"], "--observation-end must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message) as caught:
        call_command(
            "clv", "fit", "--transactions", str(path), "--customer-col", "c", "--date-col", "d",
            *args,
        )  # fmt: skip
    assert caught.value.returncode == 2


def test_bad_input_through_the_real_process(tmp_path: Path) -> None:
    missing = _run("--transactions", str(tmp_path / "nope.csv"), "--customer-col", "0",
                   "--date-col", "1")  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0
    assert "cannot read" in missing.stderr


def test_no_repeat_purchases_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "once.txt"
    path.write_text("1 20240101\n2 20240102\n3 20240103\n", encoding="utf-8")
    with pytest.raises(CommandError, match="repeat purchases") as caught:
        call_command("clv", "fit", "--transactions", str(path), "--customer-col", "0",
                     "--date-col", "1")  # fmt: skip
    assert caught.value.returncode == 1


def test_summary_merges_same_day_and_ignores_later_transactions() -> None:
    summary = summarise(
        customer_index=np.array([0, 0, 0, 0, 1, 2]),
        day=np.array([10, 10, 17, 40, 12, 31]),
        amount=np.array([5.0, 7.0, 3.0, 100.0, 9.0, 1.0]),
        end_day=24,
        days_per_unit=7.0,
    )
    # Customer 2 first bought after the end: not in the summary.
    assert summary.customers.tolist() == [0, 1]
    assert summary.x.tolist() == [1.0, 0.0]
    assert summary.t_x.tolist() == [1.0, 0.0]
    assert summary.T.tolist() == [2.0, 12 / 7]
    assert summary.monetary.tolist() == [3.0, 0.0]


def _simulate(
    n: int, r: float, alpha: float, a: float, b: float, T: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    clock = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1.0 / lam[idx])
        bought = idx[clock[idx] <= T]
        x[bought] += 1
        t_x[bought] = clock[bought]
        alive[idx] = False
        alive[bought] = rng.random(len(bought)) >= p[bought]  # dies after a purchase w.p. p
    return x, t_x, np.full(n, T)


def test_fit_recovers_simulated_parameters() -> None:
    x, t_x, T = _simulate(40_000, r=0.5, alpha=6.0, a=0.8, b=3.0, T=52.0, seed=7)
    model = fit_bgnbd(x, t_x, T)
    assert model.r == pytest.approx(0.5, rel=0.08)
    assert model.alpha == pytest.approx(6.0, rel=0.1)
    assert model.a == pytest.approx(0.8, rel=0.2)
    assert model.b == pytest.approx(3.0, rel=0.25)
    # Expected purchases agree with what the population actually did, in aggregate.
    expected = model.expected_purchases_new(52.0)
    assert expected == pytest.approx(x.mean(), rel=0.03)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    x = rng.integers(1, 8, n).astype(float)
    nu = rng.gamma(4.0, 1.0 / 20.0, n)  # q=4, gamma=20
    means = rng.gamma(6.0 * x, 1.0 / (nu * x))  # p=6
    model = fit_gamma_gamma(x, means)
    assert model.p == pytest.approx(6.0, rel=0.1)
    assert model.q == pytest.approx(4.0, rel=0.1)
    assert model.gamma == pytest.approx(20.0, rel=0.15)
