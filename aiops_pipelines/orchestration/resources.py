"""Dagster resources (wiring): config, sources, the monitoring store and MLflow.

Each resource is a thin, frozen handle; the engine objects it builds are cached per process so
a backfill does not re-open connections for every partition. Nothing is read from the
environment at import time: an empty field means "take it from the config file", and the config
file itself defaults to `$AIOPS_CONFIG` or the demo's config under `$AIOPS_HOME`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from aiops_pipelines.core.config import AppConfig, default_config_path, load_config
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.io.tracking import Tracker


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> AppConfig:
    return load_config(path)


@lru_cache(maxsize=8)
def _store(url: str) -> MonitoringStore:
    return MonitoringStore(url)


@lru_cache(maxsize=8)
def _tracker(uri: str, artifacts_dir: str) -> Tracker:
    return Tracker(uri, artifacts_dir)


class MonitoringConfig(dg.ConfigurableResource):
    """The YAML file declaring tenants, models, sources, thresholds and storage."""

    config_path: str = Field(
        default="", description="YAML config; empty: $AIOPS_CONFIG, else the demo's config"
    )

    def path(self) -> Path:
        return Path(self.config_path).expanduser() if self.config_path else default_config_path()

    def load(self) -> AppConfig:
        p = self.path().resolve()
        return _load(str(p), p.stat().st_mtime if p.exists() else 0.0)


class SourceSettings(dg.ConfigurableResource):
    """How sources are read: chunk size and the bounded sample kept for HTML reports."""

    chunk_rows: int = Field(default=0, description="rows per chunk; 0 uses each source's own")
    sample_rows: int = Field(
        default=2000,
        description="rows sampled per day and of the reference: Evidently's HTML and multivariate "
        "drift (more rows: more power to see small joint changes, ~linear cost)",
    )
    render_html: bool = Field(default=True, description="render Evidently's HTML report")
    html_days: Literal["onset", "drift", "all"] = Field(
        default="onset",
        description="which days get Evidently's HTML (each ~4 MB): 'onset', a day with a drift "
        "finding the previous day did not have (new, or more severe); 'drift', every day with "
        "a drift finding; 'all'. Any day's on demand: aiops report --html --model M --day D",
    )


class StoreResource(dg.ConfigurableResource):
    """The SQL monitoring store (profiles, metric history, findings, audit trail)."""

    url: str = Field(default="", description="SQLAlchemy URL; empty: storage.store_url")
    lock_timeout_seconds: float = Field(
        default=600.0,
        description="how long an asset waits for another run of the same partition to finish "
        "before failing (two runs of a partition never work on it at once)",
    )

    def open(self, config: AppConfig) -> MonitoringStore:
        return _store(self.url or config.storage.store_url)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking: an experiment per model, a run per (asset, partition)."""

    tracking_uri: str = Field(default="", description="empty: storage.mlflow_tracking_uri")
    enabled: bool = Field(default=True, description="log runs to MLflow")

    def tracker(self, config: AppConfig) -> Tracker | None:
        if not self.enabled:
            return None
        return _tracker(
            self.tracking_uri or config.storage.mlflow_tracking_uri, config.storage.artifacts_dir
        )


class Clock(dg.ConfigurableResource):
    """What time it is for label arrival: the real clock, or a fixed time for replays/tests.

    Late labels make "now" part of a result (a day's coverage depends on when you look), so
    `aiops run` judges each past day at the end of that day, the demo replays its 64 days, and
    tests pin it. How old an alert notification is, is measured from `alerts_now`: in a
    backfill that is the real time (the past is recorded, not paged), in the demo's simulated
    life the replayed one.
    """

    now_iso: str = Field(default="", description="pretend it is this UTC time; empty: now")
    alerts_from_wall_clock: bool = Field(
        default=False,
        description="age alert notifications from the real time even when now_iso pretends "
        "another (a backfill replays label arrival but must not page about the past)",
    )

    day_ends: bool = Field(
        default=False,
        description="now is the end of the day being judged (a range run replaying a backfill "
        "judges each of its days as on-call saw it then); now_iso is then ignored",
    )

    def for_day(self, day: str) -> Clock:
        """The clock of one day of a run: with `day_ends`, it is that day's end."""
        if not self.day_ends:
            return self
        end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
        return Clock(now_iso=end.isoformat(), alerts_from_wall_clock=self.alerts_from_wall_clock)

    def replayed_day(self) -> str | None:
        """The day a pretended now falls in, a day's end counting as that day's (None on the
        real clock): a replay delivers the notifications of that day and before, as the daemon
        did then, never those of days that had not begun."""
        if not self.now_iso:
            return None
        return (self.now() - timedelta(microseconds=1)).date().isoformat()

    def now(self) -> datetime:
        if not self.now_iso:
            return datetime.now(UTC)
        return parse_utc(self.now_iso)

    def alerts_now(self) -> datetime:
        """The time alert notifications are aged from (see the class docstring)."""
        return datetime.now(UTC) if self.alerts_from_wall_clock else self.now()

    def at(self, as_of: str = "") -> datetime:
        """`as_of` (a run's config asking for another time), else now."""
        return parse_utc(as_of) if as_of else self.now()


def parse_utc(text: str) -> datetime:
    """An ISO time; a date or a naive time is taken as UTC."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "monitoring_config": MonitoringConfig(),
        "sources": SourceSettings(),
        "store": StoreResource(),
        "mlflow": MlflowResource(),
        "clock": Clock(),
    }
