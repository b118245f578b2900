"""How the demo's populations behave: the features of each model's traffic and the outcomes
the world really produces for them (churn, support intent, delivery time), plus the
hour-of-day traffic profiles. Features hang together as in life, and nothing but volume
depends on the hour, so a normal day looks like the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops_pipelines.demo.incidents import CONCEPT_ADD_MIN, CONCEPT_FACTOR


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows x classes) probability matrix, vectorised."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def churn_features(rng: np.random.Generator, hour: np.ndarray) -> pd.DataFrame:
    """Telecom customers scored for churn: tenure, usage and charges hang together, as in life.

    Older customers have longer tenure; long tenure buys longer contracts and more products;
    more products and more data mean higher charges; high charges and monthly contracts mean
    more support calls. Nothing depends on the hour: who gets scored does not vary in the day.
    """
    n = len(hour)
    age = np.clip(rng.normal(44, 14, n), 18, 85).round().astype(np.int64)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.25, 0.25, 0.2])
    tenure = np.clip(rng.gamma(1.6, 10 + 0.35 * (age - 18)), 0, 72).round().astype(np.int64)
    contract_logits = np.column_stack([1.2 - 0.04 * tenure, np.zeros(n), -1.0 + 0.03 * tenure])
    contract = np.array(["month-to-month", "one_year", "two_year"])[
        _sample_rows(rng, _softmax(contract_logits))
    ]
    num_products = np.clip(1 + rng.poisson(0.6 + 0.015 * tenure), 1, 6).astype(np.int64)
    usage = rng.lognormal(np.log(12) - 0.012 * (age - 44), 0.6)
    usage[rng.random(n) < 0.01] = np.nan  # a meter that sometimes does not report
    region_offset = np.select(
        [region == "north", region == "south", region == "east"], [2.0, -3.0, 0.0], 4.0
    )
    charges = 18 + 14 * num_products + 0.9 * np.nan_to_num(usage, nan=12.0) + region_offset
    charges = np.clip(charges + rng.normal(0, 8, n), 15, None)
    calls = rng.poisson(
        0.6 + 0.015 * np.maximum(charges - 60, 0) + 0.5 * (contract == "month-to-month")
    ).astype(np.int64)
    young = age < 35
    pay_p = np.where(young[:, None], [[0.3, 0.2, 0.42, 0.08]], [[0.32, 0.3, 0.23, 0.15]])
    payment = np.array(["credit_card", "bank_transfer", "electronic_check", "mailed_check"])[
        _sample_rows(rng, pay_p)
    ]
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges.round(2),
            "support_calls": calls,
            "data_usage_gb": usage.round(3),
            "age": age,
            "num_products": num_products,
            "contract_type": contract,
            "region": region,
            "payment_method": payment,
        }
    )


def churn_labels(rng: np.random.Generator, x: pd.DataFrame, shifted: np.ndarray) -> np.ndarray:
    """Churn follows a logistic law of the features (no concept shift is injected here)."""
    logit = (
        -0.9
        - 0.045 * x["tenure_months"]
        + 0.03 * (x["monthly_charges"] - 70)
        + 0.4 * x["support_calls"]
        + 0.9 * (x["contract_type"] == "month-to-month")
        - 0.9 * (x["contract_type"] == "two_year")
        + 0.5 * (x["payment_method"] == "electronic_check")
        - 0.2 * (x["num_products"] - 1)
        - 0.012 * (x["age"] - 44)
        + 0.015 * (x["data_usage_gb"].fillna(12) - 12)
    ).to_numpy(dtype=float)
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


INTENT_CLASSES = ["billing", "cancellation", "sales", "technical_support"]


def intent_features(rng: np.random.Generator, hour: np.ndarray) -> pd.DataFrame:
    """Support messages routed by intent: channel and plan shape how people write to us."""
    n = len(hour)
    channel = rng.choice(["web", "app", "email", "phone"], n, p=[0.38, 0.3, 0.17, 0.15])
    plan = rng.choice(["free", "basic", "pro", "enterprise"], n, p=[0.35, 0.33, 0.22, 0.10])
    language = rng.choice(["en", "de", "fr", "es"], n, p=[0.55, 0.2, 0.13, 0.12])
    paid_big = np.isin(plan, ["pro", "enterprise"])
    account_age = rng.gamma(2.0, 220 + 120 * paid_big).round().astype(np.int64)
    prior = rng.poisson(0.9 + 0.5 * paid_big).astype(np.int64)
    length = rng.lognormal(
        np.log(220) + 0.4 * (channel == "email") - 0.3 * (channel == "app"), 0.55
    )
    sentiment = np.clip(rng.normal(0.15 - 0.1 * prior, 0.35), -1, 1)
    return pd.DataFrame(
        {
            "message_length": np.maximum(length.round(), 5).astype(np.int64),
            "num_prior_contacts": prior,
            "account_age_days": account_age,
            "sentiment_score": sentiment.round(4),
            "channel": channel,
            "plan_tier": plan,
            "language": language,
        }
    )


def intent_labels(rng: np.random.Generator, x: pd.DataFrame, shifted: np.ndarray) -> np.ndarray:
    """The intent is drawn from a softmax of the features (a channel it never saw is 'phone')."""
    ch = x["channel"].to_numpy()
    phone_like = (ch == "phone") | ~np.isin(ch, ["web", "app", "email"])
    plan = x["plan_tier"].to_numpy()
    loglen = np.log(x["message_length"].to_numpy(dtype=float) / 220)
    prior = x["num_prior_contacts"].to_numpy(dtype=float)
    sent = x["sentiment_score"].to_numpy(dtype=float)
    age = x["account_age_days"].to_numpy(dtype=float) / 365
    logits = np.column_stack(
        [
            0.2 + 1.8 * phone_like + 1.0 * (plan == "basic") + 0.2 * age,  # billing
            -1.2 - 4.0 * sent + 0.6 * prior + 0.5 * (ch == "email"),  # cancellation
            -0.6 + 2.4 * (plan == "free") + 1.0 * (ch == "web") - 0.5 * age,  # sales
            0.2 + 2.2 * loglen + 1.2 * (ch == "app") + 0.9 * np.isin(plan, ["pro", "enterprise"]),
        ]
    )
    return np.array(INTENT_CLASSES)[_sample_rows(rng, _softmax(logits))]


def _rush(hour: np.ndarray) -> np.ndarray:
    """How congested the roads are at a given hour (0..1), peaking at 8h and 18h."""
    h = hour.astype(float)
    return np.exp(-0.5 * ((h - 8) / 1.5) ** 2) + np.exp(-0.5 * ((h - 18) / 2.0) ** 2)


def eta_features(rng: np.random.Generator, hour: np.ndarray) -> pd.DataFrame:
    """Food deliveries: order size, kitchen time, distance, vehicle and traffic by the hour."""
    n = len(hour)
    city = rng.choice(
        ["berlin", "paris", "madrid", "rome", "amsterdam"], n, p=[0.28, 0.26, 0.18, 0.14, 0.14]
    )
    vehicle = rng.choice(["bike", "scooter", "car"], n, p=[0.45, 0.35, 0.2])
    weather = rng.choice(["clear", "cloudy", "rain"], n, p=[0.62, 0.24, 0.14])
    distance = np.clip(rng.lognormal(np.log(3.2) + 0.25 * (vehicle == "car"), 0.5), 0.3, 25)
    dinner = (hour >= 18) & (hour <= 21)
    items = (1 + rng.poisson(1.6 + 0.4 * dinner)).astype(np.int64)
    prep = 6 + 1.8 * items + rng.gamma(2.0, 2.5, n)
    city_traffic = np.select(
        [city == "paris", city == "rome", city == "amsterdam"], [0.1, 0.08, -0.1]
    )
    traffic = np.clip(0.3 + 0.3 * _rush(hour) + city_traffic + rng.normal(0, 0.12, n), 0, 1)
    traffic[rng.random(n) < 0.02] = np.nan  # the traffic feed has small gaps
    return pd.DataFrame(
        {
            "distance_km": distance.round(3),
            "num_items": items,
            "prep_time_min": prep.round(2),
            "traffic_index": traffic.round(4),
            "city": city,
            "vehicle_type": vehicle,
            "weather": weather,
        }
    )


def eta_labels(rng: np.random.Generator, x: pd.DataFrame, shifted: np.ndarray) -> np.ndarray:
    """Delivery minutes: kitchen, pickup, ride. After a concept shift, orders are batched.

    The batching policy (the injected concept shift) makes every delivery ~20% longer plus a
    fixed detour, without changing any feature: only P(y | x) moves.
    """
    vehicle = x["vehicle_type"].to_numpy()
    traffic = x["traffic_index"].fillna(0.45).to_numpy(dtype=float)
    speed = np.select([vehicle == "bike", vehicle == "scooter"], [15.0, 24.0], 30.0)
    slow = np.where(vehicle == "bike", 0.15, 0.55) * traffic
    speed = speed * (1 - slow) * np.where(x["weather"].to_numpy() == "rain", 0.85, 1.0)
    ride = x["distance_km"].to_numpy(dtype=float) / speed * 60
    minutes = 0.7 * x["prep_time_min"].to_numpy(dtype=float) + 4 + ride
    minutes = minutes * rng.lognormal(0, 0.08, len(x)) + rng.normal(0, 1.5, len(x))
    minutes = np.where(shifted, CONCEPT_FACTOR * minutes + CONCEPT_ADD_MIN, minutes)
    return np.maximum(minutes, 5).round(2)


def daily_profile(points: dict[int, float]) -> tuple[float, ...]:
    """A smooth 24-hour traffic profile from a few anchor hours (linear in between)."""
    hours = sorted(points)
    xs = [*hours, hours[0] + 24]
    ys = [points[h] for h in hours] + [points[hours[0]]]
    w = np.interp(np.arange(24) + (np.arange(24) < hours[0]) * 24, xs, ys)
    return tuple(float(v) for v in w / w.sum())
