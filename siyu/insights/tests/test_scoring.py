"""Scoring: the per-tenant refit on paid orders, P(alive) / engagement / CLV / RFM per customer,
the at-risk list (event + churn task, once), repurchase reminders, data scope, engagement
calibration."""

from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.insights import scoring, selectors, services
from siyu.insights.models import CustomerScore, ValueModel
from siyu.insights.tests.helpers import customer, paid
from siyu.testing.stories import Company
from siyu.workspace.models import StaffTask

DAY = timedelta(days=1)


REPEAT_BUYERS = 14  # of the fixture below (its random draws are seeded)


@pytest.fixture
def buyers(acme: Company) -> Company:
    """12 of alice's and bob's customers buying every 25-45 days and dropping out after a
    purchase with probability 0.25 (as BG/NBD assumes), 6 one-off buyers, and two telling
    cases: ``wm-gone`` bought big every 10 days, then nothing for 330 days; ``wm-due`` buys
    every 30 days and last bought 28 days ago. Plus ``wm-never``, who never bought."""
    now = timezone.now()
    rng = np.random.default_rng(5)
    with tenant_context(acme.tenant):
        for i in range(12):
            ext = f"wm-r{i}"
            customer(acme, "alice" if i % 2 else "bob", ext, now - 400 * DAY)
            day, n = 360 - int(rng.integers(0, 30)), 0
            while day > 5:
                paid(ext, now - day * DAY, int(rng.integers(5000, 20000)), n)
                if n and rng.random() < 0.25:
                    break
                day, n = day - int(rng.integers(25, 46)), n + 1
        for i in range(6):
            customer(acme, "bob", f"wm-once{i}", now - 200 * DAY)
            paid(f"wm-once{i}", now - (150 + i) * DAY, 3000, 0)
        customer(acme, "alice", "wm-gone", now - 420 * DAY)
        for n, day in enumerate(range(400, 329, -10)):
            paid("wm-gone", now - day * DAY, 50000, n)
        customer(acme, "alice", "wm-due", now - 400 * DAY)
        for n, day in enumerate(range(148, 27, -30)):
            paid("wm-due", now - day * DAY, 8000, n)
        customer(acme, "carol", "wm-never", now - 10 * DAY)
    return acme


def _score(name: str) -> CustomerScore:
    return CustomerScore.objects.select_related("customer").get(customer__name=name)


def test_refresh_fits_and_scores_every_customer(buyers: Company) -> None:
    with tenant_context(buyers.tenant):
        model = services.scores_refresh()
        assert model.fit_error == ""
        assert model.r and model.alpha and model.a and model.b and model.p and model.q
        assert (model.customers, model.buyers) == (21, 20)
        assert model.repeat_buyers == REPEAT_BUYERS
        assert CustomerScore.objects.count() == 21
        gone, due, never = _score("wm-gone"), _score("wm-due"), _score("wm-never")
        assert gone.purchases == 8 and gone.paid_fen == 8 * 50000
        assert gone.p_alive is not None and due.p_alive is not None
        assert gone.p_alive < 0.01 < 0.5 < due.p_alive
        assert due.expected_purchases is not None and due.expected_purchases > 0.3
        assert due.clv_fen is not None and gone.clv_fen is not None and due.clv_fen > gone.clv_fen
        # Own mean interval: 30 days after the last purchase.
        assert due.last_paid_at is not None and due.expected_repurchase_at is not None
        gap = timezone.localdate(due.expected_repurchase_at) - timezone.localdate(due.last_paid_at)
        assert gap == 30 * DAY
        assert never.p_alive is None and never.segment == "" and never.clv_fen is None
        assert due.segment in {"champion", "loyal", "develop", "new"}
        assert gone.segment in {"keep", "win_back"}
        assert {due.rfm_r, gone.rfm_r} <= {1, 2, 3, 4, 5}
        assert gone.rfm_r is not None and due.rfm_r is not None and gone.rfm_r < due.rfm_r


def test_at_risk_once_and_repurchase_reminders(buyers: Company) -> None:
    with tenant_context(buyers.tenant):
        services.scores_refresh()
        gone = _score("wm-gone")
        assert gone.at_risk and gone.at_risk_since is not None
        assert not _score("wm-due").at_risk
        assert not _score("wm-once0").at_risk  # small spenders are not on the list
        events = Event.objects.filter(type="customer.at_risk")
        assert gone.customer_id in {e.customer_id for e in events}
        task = StaffTask.objects.get(kind="churn", customer_id=gone.customer_id)
        assert task.staff == buyers["alice"]
        before = (events.count(), StaffTask.objects.filter(kind="churn").count())
        services.scores_refresh(now=timezone.now() + DAY)
        assert (
            Event.objects.filter(type="customer.at_risk").count(),
            StaffTask.objects.filter(kind="churn").count(),
        ) == before
        assert _score("wm-gone").at_risk_since == gone.at_risk_since
        # wm-due is due in 2 days: a reminder for alice, once, due on the expected day.
        due = _score("wm-due")
        task = StaffTask.objects.get(kind="repurchase", customer_id=due.customer_id)
        assert (task.staff, task.due_at) == (buyers["alice"], due.expected_repurchase_at)
        assert StaffTask.objects.filter(kind="repurchase", customer_id=due.customer_id).count() == 1


def test_too_little_data_still_scores_engagement(acme: Company) -> None:
    now = timezone.now()
    with tenant_context(acme.tenant):
        customer(acme, "alice", "wm-x", now - 3 * DAY)
        paid("wm-x", now - DAY, 1000, 0)
        model = services.scores_refresh()
        assert "repeat" in model.fit_error
        assert model.half_life_days == scoring.DEFAULT_HALF_LIFE
        score = _score("wm-x")
        assert score.p_alive is None and score.purchases == 1
        assert 0.0 <= score.p_engaged <= 1.0
        assert ValueModel.objects.count() == 1


def test_scope_api_and_pages(buyers: Company, login) -> None:
    with tenant_context(buyers.tenant):
        services.scores_refresh()
        alice_sees = set(
            selectors.scores(actor=buyers["alice"]).values_list("customer__name", flat=True)
        )
    assert "wm-gone" in alice_sees and "wm-r1" in alice_sees and "wm-never" not in alice_sees
    assert "wm-r0" not in alice_sees  # bob's
    client = login.token(buyers["alice"])
    at_risk = client.get("/api/v1/insights/at-risk").json()
    names = [item["customer_name"] for item in at_risk["items"]]
    assert names[0] == "wm-gone"  # the biggest spender first
    assert set(names) <= alice_sees
    value = client.get("/api/v1/insights/value").json()
    assert value["buyers"] == len(alice_sees)
    assert sum(map(sum, value["rfm_grid"])) == value["buyers"]
    assert sum(b["customers"] for b in value["clv_histogram"]) == value["buyers"]
    with tenant_context(buyers.tenant):
        bobs = _score("wm-r0").customer_id
        mine = _score("wm-due").customer_id
    assert client.get(f"/api/v1/insights/customers/{bobs}").status_code == 404
    assert client.get(f"/api/v1/insights/customers/{mine}").json()["p_alive"] > 0.5
    assert client.get("/api/v1/insights/model").json()["repeat_buyers"] == REPEAT_BUYERS
    session = login.session(buyers["alice"])
    assert "wm-gone" in session.get(reverse("console:insights_at_risk")).content.decode()
    assert "wm-due" in session.get(reverse("console:insights_value")).content.decode()


def test_engagement_calibration_prefers_the_true_memory() -> None:
    # Customers interact as a Poisson process whose rate drifts slowly: a long half-life
    # predicts the next 30 days better than a week-long one, and probabilities rise with rate.
    rng = np.random.default_rng(11)
    n = 3000
    rate = rng.gamma(0.6, 1 / 20, n)  # interactions per day
    counts = rng.poisson(rate * 400)
    customer = np.repeat(np.arange(n), counts)
    day = rng.uniform(-400, 0, counts.sum())
    model = scoring.calibrate_engagement(customer, day, np.full(n, -400.0), 0.0)
    assert model.log_loss is not None
    assert model.half_life >= 60
    score = scoring.decayed_scores(customer, day, n, 0.0, model.half_life)
    p = model.probability(score)
    observed = 1 - np.exp(-rate * scoring.WINDOW_DAYS)
    assert abs(p.mean() - observed.mean()) < 0.05
    few = scoring.calibrate_engagement(np.array([0, 1]), np.array([-5.0, -40.0]), np.zeros(3), 0.0)
    assert (few.half_life, few.log_loss) == (scoring.DEFAULT_HALF_LIFE, None)


def test_nightly_task_rescores_every_tenant(acme: Company, globex: Company) -> None:
    from siyu.insights.tasks import refresh_scores

    with tenant_context(globex.tenant):
        customer(globex, "dave", "wm-g1", timezone.now() - 5 * DAY)
    assert refresh_scores() == 2
    for company, customers in ((acme, 0), (globex, 1)):
        with tenant_context(company.tenant):
            model = ValueModel.objects.get()
            assert (model.customers, CustomerScore.objects.count()) == (customers, customers)
