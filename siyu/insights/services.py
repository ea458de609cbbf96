"""Writes of the insights app: churn records (from deletion events), churn reasons, and the
periodic refit + rescore that keeps P(alive), CLV, RFM and the at-risk list current.

Models and their calibration: docs/insights.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require, visible_staff_ids
from siyu.analytics.rollup import DELETE_BY_TRANSFER
from siyu.analytics.sources import NO_SOURCE, source_of_state
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.events import CUSTOMER_DELETED_STAFF
from siyu.customers.models import Customer, StaffRelation
from siyu.insights import clv, events, scoring, selectors
from siyu.insights.models import (
    ChurnDirection,
    ChurnRecord,
    CustomerScore,
    KnownReason,
    ValueModel,
)
from siyu.workspace.services import alert_send, task_create

logger = logging.getLogger(__name__)

AT_RISK_BELOW = 0.3  # P(active) under this, for a valuable customer, puts them on the list
PREDICTION_DAYS = 30  # "next period" of expected purchases
CLV_MONTHS = 12  # CLV horizon, in 30-day periods, discounted monthly
CLV_MONTHLY_DISCOUNT = 0.01
REMIND_LEAD_DAYS = 3  # a repurchase reminder appears this long before the expected date
REMIND_GRACE_DAYS = 7  # and is no longer created once the date is this far past
BATCH = 1000
SCORE_FIELDS = [
    "purchases",
    "paid_fen",
    "last_paid_at",
    "p_alive",
    "p_engaged",
    "p_active",
    "expected_purchases",
    "clv_fen",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "segment",
    "expected_repurchase_at",
    "at_risk",
    "at_risk_since",
    "scored_at",
]


# --- churn -------------------------------------------------------------------------------------


def _known_reason(customer_id: int, relation: StaffRelation | None, at: datetime) -> str:
    if selectors.recent_event(customer_id, ("order.refunded",), at - timedelta(days=30), at):
        return KnownReason.AFTER_REFUND
    mass_send = ("masssend.sent", "masssend.delivered")
    if selectors.recent_event(customer_id, mass_send, at - timedelta(hours=48), at):
        return KnownReason.AFTER_MASS_SEND
    if relation is not None and relation.added_at and at - relation.added_at <= timedelta(days=1):
        return KnownReason.QUICK_LEAVE
    return KnownReason.NONE


def churn_record(*, event: Event) -> ChurnRecord | None:
    """Record a deletion (either way) with its source and known reason, and alert: the member
    when a customer deleted them, the bosses when a member deleted a customer. A handover's
    automatic delete (在职/离职继承) is no churn."""
    payload = event.payload
    if payload.get("source") == DELETE_BY_TRANSFER or event.customer_id is None:
        return None
    existing = ChurnRecord.objects.filter(event_id=event.pk).first()
    if existing is not None:
        return existing
    customer = Customer.objects.filter(pk=event.customer_id).first()
    if customer is None:
        return None
    staff = StaffMember.objects.filter(userid=str(payload.get("staff_userid", ""))).first()
    relation = (
        StaffRelation.objects.filter(
            staff=staff, external_userid=str(payload.get("external_userid", ""))
        ).first()
        if staff is not None
        else None
    )
    source = source_of_state(relation.state) if relation is not None else NO_SOURCE
    direction = (
        ChurnDirection.CUSTOMER if event.type == CUSTOMER_DELETED_STAFF else ChurnDirection.STAFF
    )
    record = ChurnRecord.objects.create(
        event_id=event.pk,
        customer=customer,
        staff=staff,
        direction=direction,
        source_kind=source[0],
        source_id=source[1],
        deleted_at=event.occurred_at,
        known_reason=_known_reason(customer.pk, relation, event.occurred_at),
        paid_fen=selectors.customer_paid_fen(customer.pk),
    )
    _churn_alerts(record, customer, staff)
    return record


def _churn_alerts(record: ChurnRecord, customer: Customer, staff: StaffMember | None) -> None:
    name = customer.name or _("客户")
    spent = _("，累计消费 ¥%(yuan).2f") % {"yuan": record.paid_fen / 100} if record.paid_fen else ""
    if record.direction == ChurnDirection.CUSTOMER:
        if staff is not None:
            alert_send(
                staff=staff,
                kind="churn",
                text=_("客户「%(name)s」删除了你%(spent)s。可在流失分析中记录原因。")
                % {"name": name, "spent": spent},
                dedupe_key=f"churn:{record.event_id}",
                customer=customer,
            )
        return
    member = staff.name if staff is not None else _("员工")
    for boss in selectors.bosses():
        if staff is not None and boss.pk == staff.pk:
            continue
        alert_send(
            staff=boss,
            kind="churn",
            text=_("%(member)s 删除了客户「%(name)s」%(spent)s。")
            % {"member": member, "name": name, "spent": spent},
            dedupe_key=f"churn:{record.event_id}:{boss.pk}",
            customer=customer,
        )


def churn_reason_set(
    *, actor: StaffMember, record_id: int, reason: str, source: str
) -> ChurnRecord:
    """A member writes down why a customer left (their own relations, or those in scope)."""
    require(actor, Action.INSIGHTS_VIEW)
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise InvalidInput(_("流失原因需要 1 到 200 个字"))
    rows = ChurnRecord.objects.filter(pk=record_id)
    ids = visible_staff_ids(actor)
    if ids is not None:
        rows = rows.filter(staff_id__in=ids)
    with transaction.atomic():
        record = rows.select_for_update().first()
        if record is None:
            raise NotFound(_("流失记录不存在"))
        record.reason = reason
        record.reason_by = actor
        record.reason_at = timezone.now()
        record.save(update_fields=["reason", "reason_by", "reason_at"])
        event_record(
            type=events.CHURN_REASON_RECORDED,
            source=source,
            customer_id=record.customer_id,
            payload={"record_id": record.pk, "reason": reason, "staff_id": actor.pk},
        )
    return record


# --- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Purchases:
    """Per scored customer (arrays aligned with the customer list)."""

    count: np.ndarray  # distinct purchase days
    paid_fen: np.ndarray
    last_paid_at: dict[int, datetime]
    summary: clv.Summary
    first_day: np.ndarray  # day number of the first purchase; NaN for non-buyers
    last_day: np.ndarray


def _day(at: datetime) -> int:
    return timezone.localdate(at).toordinal()


def _at_local(day: float) -> datetime:
    moment = datetime.combine(date.fromordinal(int(round(day))), time(10))
    return timezone.make_aware(moment)


def _purchases(index: dict[int, int], now: datetime) -> _Purchases:
    n = len(index)
    rows = [p for p in selectors.paid_purchases() if p.customer_id in index and p.paid_at <= now]
    cust = np.fromiter((index[p.customer_id] for p in rows), dtype=np.int64, count=len(rows))
    days = np.fromiter((_day(p.paid_at) for p in rows), dtype=np.int64, count=len(rows))
    amount = np.fromiter((p.amount_fen for p in rows), dtype=np.float64, count=len(rows))
    last_paid: dict[int, datetime] = {}
    for i, p in zip(cust.tolist(), rows, strict=True):
        if i not in last_paid or p.paid_at > last_paid[i]:
            last_paid[i] = p.paid_at
    summary = clv.summarise(
        customer_index=cust, day=days, amount=amount, end_day=_day(now), days_per_unit=1.0
    )
    count = np.zeros(n)
    count[summary.customers] = summary.x + 1
    first_day = np.full(n, np.nan)
    first_day[summary.customers] = _day(now) - summary.T
    last_day = np.full(n, np.nan)
    last_day[summary.customers] = first_day[summary.customers] + summary.t_x
    return _Purchases(
        count=count,
        paid_fen=np.bincount(cust, weights=amount, minlength=n),
        last_paid_at=last_paid,
        summary=summary,
        first_day=first_day,
        last_day=last_day,
    )


def _engagement(
    index: dict[int, int], created_days: np.ndarray, now: datetime
) -> tuple[scoring.Engagement, np.ndarray]:
    lookback = timedelta(days=max(scoring.HALF_LIVES) * scoring.LOOKBACK_HALF_LIVES)
    rows = [(index[c], at) for c, at in selectors.interactions(now - lookback) if c in index]
    seconds = now.timestamp()
    cust = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
    # Days before now, as negative numbers so "now" is day 0.
    day = np.fromiter(
        ((at.timestamp() - seconds) / 86400 for _, at in rows), dtype=np.float64, count=len(rows)
    )
    model = scoring.calibrate_engagement(cust, day, created_days, 0.0)
    score = scoring.decayed_scores(cust, day, len(index), 0.0, model.half_life)
    return model, model.probability(score)


MODEL_FIELDS = (
    "r",
    "alpha",
    "a",
    "b",
    "bgnbd_log_likelihood",
    "p",
    "q",
    "gamma",
    "gamma_gamma_log_likelihood",
)


@dataclass(frozen=True)
class _Predictions:
    fitted: dict[str, float]  # MODEL_FIELDS that could be fitted
    fit_error: str
    p_alive: np.ndarray  # NaN: never bought, or no model
    expected: np.ndarray
    clv_fen: np.ndarray


def _predict(bought: _Purchases, n: int) -> _Predictions:
    """Fit BG/NBD and Gamma-Gamma (time unit: days) and predict for every buyer."""
    s = bought.summary
    p_alive, expected, clv_fen = (np.full(n, np.nan) for _ in range(3))
    try:
        bgnbd = clv.fit_bgnbd(s.x, s.t_x, s.T)
    except clv.ModelError as exc:
        return _Predictions({}, str(exc), p_alive, expected, clv_fen)
    fitted = {
        "r": bgnbd.r,
        "alpha": bgnbd.alpha,
        "a": bgnbd.a,
        "b": bgnbd.b,
        "bgnbd_log_likelihood": bgnbd.log_likelihood,
    }
    fit_error = ""
    try:
        spend_model = clv.fit_gamma_gamma(s.x, s.monetary)
        fitted |= {
            "p": spend_model.p,
            "q": spend_model.q,
            "gamma": spend_model.gamma,
            "gamma_gamma_log_likelihood": spend_model.log_likelihood,
        }
        spend = spend_model.expected_spend(s.x, s.monetary)
    except clv.ModelError as exc:
        fit_error = str(exc)
        # Without a spend model each buyer's own average purchase stands in.
        spend = bought.paid_fen[s.customers] / bought.count[s.customers]
    p_alive[s.customers] = bgnbd.p_alive(s.x, s.t_x, s.T)
    if bgnbd.a <= 1:
        # BG/NBD's expected purchases divide by (a - 1): with little repeat buying the fit can
        # land at a ≤ 1, where they are undefined. P(alive) still holds; the rest waits.
        fit_error = fit_error or "a ≤ 1: too little repeat buying to predict purchases yet"
        return _Predictions(fitted, fit_error, p_alive, expected, clv_fen)
    expected[s.customers] = bgnbd.expected_purchases(PREDICTION_DAYS, s.x, s.t_x, s.T)
    clv_fen[s.customers] = clv.lifetime_value(
        bgnbd,
        spend,
        x=s.x,
        t_x=s.t_x,
        T=s.T,
        periods=CLV_MONTHS,
        period_length=30.0,
        discount_rate=CLV_MONTHLY_DISCOUNT,
    )
    return _Predictions(fitted, fit_error, p_alive, expected, clv_fen)


def scores_refresh(*, now: datetime | None = None) -> ValueModel:
    """Refit the tenant's models on its paid orders and interaction history, rescore every
    customer, put newly at-risk valuable customers on the list (event + churn task) and create
    the repurchase reminders that are due."""
    now = now or timezone.now()
    customers = selectors.scored_customers()
    ids = [pk for pk, _ in customers]
    index = {pk: i for i, pk in enumerate(ids)}
    created_days = np.array([(at - now).total_seconds() / 86400 for _, at in customers])
    bought = _purchases(index, now)
    s = bought.summary
    n = len(ids)
    predicted = _predict(bought, n)
    p_alive = predicted.p_alive
    engagement, p_engaged = _engagement(index, created_days, now)
    repeat = np.zeros(n, dtype=bool)
    repeat[s.customers] = s.x > 0
    # Either kind of evidence keeps a repeat buyer active; for everyone else BG/NBD says
    # P(alive) = 1 by construction (no repeat purchase, no evidence of death): engagement decides.
    p_active = np.where(repeat, 1.0 - (1.0 - np.nan_to_num(p_alive)) * (1.0 - p_engaged), p_engaged)
    buyers = bought.count > 0
    valuable_from = float(np.median(bought.paid_fen[buyers])) if buyers.any() else np.inf
    at_risk = buyers & (bought.paid_fen >= valuable_from) & (p_active < AT_RISK_BELOW)
    rfm = _rfm(bought, buyers, _day(now))
    repurchase = scoring.repurchase_days(bought.first_day, bought.last_day, bought.count)
    model, _created = ValueModel.objects.update_or_create(
        defaults={
            **{key: predicted.fitted.get(key) for key in MODEL_FIELDS},
            "customers": n,
            "buyers": int(buyers.sum()),
            "repeat_buyers": int(repeat.sum()),
            "half_life_days": engagement.half_life,
            "engagement_intercept": engagement.intercept,
            "engagement_slope": engagement.slope,
            "engagement_log_loss": engagement.log_loss,
            "fit_error": predicted.fit_error[:200],
            "fitted_at": now,
        }
    )
    table = _Table(
        ids=ids,
        purchases=bought.count,
        paid_fen=bought.paid_fen,
        last_paid_at=bought.last_paid_at,
        p_alive=p_alive,
        p_engaged=p_engaged,
        p_active=p_active,
        expected=predicted.expected,
        clv_fen=predicted.clv_fen,
        rfm=rfm,
        repurchase=repurchase,
        at_risk=at_risk,
    )
    for batch in _batches(n):
        _write(table, batch, now)
    return model


@dataclass(frozen=True)
class _Rfm:
    r: np.ndarray
    f: np.ndarray
    m: np.ndarray
    segment: list[str]


def _rfm(bought: _Purchases, buyers: np.ndarray, today: int) -> _Rfm:
    n = len(buyers)
    r, f, m = (np.zeros(n, dtype=np.int64) for _ in range(3))
    segment = [""] * n
    idx = np.flatnonzero(buyers)
    recency = today - bought.last_day[idx]
    r[idx] = scoring.quintile(-recency)
    f[idx] = scoring.quintile(bought.count[idx])
    m[idx] = (scoring.quintile(bought.paid_fen[idx]),)
    for i, name in zip(
        idx.tolist(),
        scoring.rfm_segments(recency, bought.count[idx], bought.paid_fen[idx]),
        strict=True,
    ):
        segment[i] = name
    return _Rfm(r, f, m, segment)


@dataclass(frozen=True)
class _Table:
    ids: list[int]
    purchases: np.ndarray
    paid_fen: np.ndarray
    last_paid_at: dict[int, datetime]
    p_alive: np.ndarray
    p_engaged: np.ndarray
    p_active: np.ndarray
    expected: np.ndarray
    clv_fen: np.ndarray
    rfm: _Rfm
    repurchase: np.ndarray
    at_risk: np.ndarray


def _batches(n: int) -> Iterator[range]:
    for start in range(0, n, BATCH):
        yield range(start, min(n, start + BATCH))


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _write(table: _Table, batch: range, now: datetime) -> None:
    """Upsert one batch of score rows; the at-risk events and tasks of customers who just
    became at risk, and due repurchase reminders, in the same transaction."""
    tenant = get_current_tenant()
    ids = [table.ids[i] for i in batch]
    with transaction.atomic():
        previous = dict(
            CustomerScore.objects.filter(customer_id__in=ids, at_risk=True).values_list(
                "customer_id", "at_risk_since"
            )
        )
        rows: list[CustomerScore] = []
        newly_at_risk: list[CustomerScore] = []
        due: list[CustomerScore] = []
        for i in batch:
            customer_id = table.ids[i]
            risky = bool(table.at_risk[i])
            repurchase = table.repurchase[i]
            row = CustomerScore(
                tenant=tenant,
                customer_id=customer_id,
                purchases=int(table.purchases[i]),
                paid_fen=int(table.paid_fen[i]),
                last_paid_at=table.last_paid_at.get(i),
                p_alive=_optional(table.p_alive[i]),
                p_engaged=float(table.p_engaged[i]),
                p_active=float(table.p_active[i]),
                expected_purchases=_optional(table.expected[i]),
                clv_fen=None if np.isnan(table.clv_fen[i]) else int(round(table.clv_fen[i])),
                rfm_r=int(table.rfm.r[i]) or None,
                rfm_f=int(table.rfm.f[i]) or None,
                rfm_m=int(table.rfm.m[i]) or None,
                segment=table.rfm.segment[i],
                expected_repurchase_at=None if np.isnan(repurchase) else _at_local(repurchase),
                at_risk=risky,
                at_risk_since=(previous.get(customer_id) or now) if risky else None,
                scored_at=now,
            )
            rows.append(row)
            if risky and customer_id not in previous:
                newly_at_risk.append(row)
            at = row.expected_repurchase_at
            if (
                at is not None
                and not risky
                and (
                    at - timedelta(days=REMIND_LEAD_DAYS)
                    <= now
                    <= at + timedelta(days=REMIND_GRACE_DAYS)
                )
            ):
                due.append(row)
        CustomerScore.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["tenant", "customer"],
            update_fields=SCORE_FIELDS,
        )
        owners = selectors.customer_owners([row.customer_id for row in newly_at_risk + due])
        for row in newly_at_risk:
            _at_risk_raised(row, owners.get(row.customer_id), now)
        for row in due:
            owner = owners.get(row.customer_id)
            if owner is not None and row.last_paid_at is not None and row.expected_repurchase_at:
                task_create(
                    staff=owner,
                    kind="repurchase",
                    customer=Customer(pk=row.customer_id),
                    title=_("复购提醒：客户预计 %(day)s 再次购买")
                    % {"day": timezone.localdate(row.expected_repurchase_at).isoformat()},
                    body=_("按该客户自己的平均购买间隔推算；上次购买 %(last)s。")
                    % {"last": timezone.localdate(row.last_paid_at).isoformat()},
                    source="insights",
                    dedupe_key=f"repurchase:{row.customer_id}:{_day(row.last_paid_at)}",
                    due_at=row.expected_repurchase_at,
                )


def _at_risk_raised(row: CustomerScore, owner: StaffMember | None, now: datetime) -> None:
    event_record(
        type=events.CUSTOMER_AT_RISK,
        source="schedule",
        customer_id=row.customer_id,
        idempotency_key=f"at_risk:{row.customer_id}:{now.date().isoformat()}",
        payload={
            "p_active": round(row.p_active, 4),
            "p_alive": None if row.p_alive is None else round(row.p_alive, 4),
            "p_engaged": round(row.p_engaged, 4),
            "paid_fen": row.paid_fen,
            "staff_id": owner.pk if owner is not None else None,
        },
    )
    if owner is None or owner.status != StaffStatus.ACTIVE:
        return
    task_create(
        staff=owner,
        kind="churn",
        customer=Customer(pk=row.customer_id),
        title=_("流失预警：高价值客户可能流失，请尽快联系"),
        body=_("活跃概率 %(p).0f%%，累计消费 ¥%(yuan).2f。")
        % {"p": row.p_active * 100, "yuan": row.paid_fen / 100},
        source="insights",
        dedupe_key=f"churn:{row.customer_id}:{now.date().isoformat()}",
    )
