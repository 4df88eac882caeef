"""Prometheus metrics, served at /metrics in webhook mode. Figures that live in the
store (outbox by status, last planner tick) are read at scrape time, so every process
reports the same truth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

UPDATES = Counter("biblio_updates_total", "Updates handled, by kind", ["kind"], registry=REGISTRY)
HANDLER_SECONDS = Histogram(
    "biblio_handler_seconds",
    "Time to handle one update",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
WEBHOOK_REJECTED = Counter(
    "biblio_webhook_rejected_total",
    "Webhook requests not handled, by reason",
    ["reason"],
    registry=REGISTRY,
)
TELEGRAM_429 = Counter(
    "biblio_telegram_429_total", "Flood-control answers (429) from Telegram", registry=REGISTRY
)
OUTBOX = Gauge("biblio_outbox_rows", "Outbox rows by status", ["status"], registry=REGISTRY)
PLANNER_AGE = Gauge(
    "biblio_planner_tick_age_seconds", "Seconds since the planner last ran", registry=REGISTRY
)
