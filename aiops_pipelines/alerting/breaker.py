"""A circuit breaker per alert route: a route that keeps failing is left alone for a while.

After `breaker_failures` consecutive failed messages a route opens: its notifications stay
pending and are not attempted until `open_until`. Then one trial message goes out, with one
attempt (half-open): accepted, the route closes and the rest follow; refused, it opens again
for twice the cool-down, up to `breaker_max_cooldown_seconds`. The state is stored per route
(`alert_routes`), so it holds across runs and processes: a receiver that is down is not
re-sent the same message by every run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from aiops_pipelines.core.config import AlertingConfig
from aiops_pipelines.io.store import MonitoringStore


@dataclass(frozen=True)
class RouteState:
    """One route's breaker: `failures` consecutive failed messages; `open_until` set once it
    opened (still set while a trial is due: `tripped`), cleared by an accepted message."""

    route: str
    failures: int = 0
    open_until: datetime | None = None
    cooldown_seconds: float | None = None
    last_error: str | None = None
    last_failure_at: datetime | None = None
    last_success_at: datetime | None = None
    summary_requested_at: datetime | None = None

    @property
    def tripped(self) -> bool:
        """Opened and not closed since: open, or (its cool-down over) due for a trial."""
        return self.open_until is not None

    def is_open(self, now: datetime) -> bool:
        """Its notifications are not to be attempted at `now`."""
        return self.open_until is not None and now < self.open_until

    def after(
        self, error: str | None, now: datetime, cfg: AlertingConfig, *, timed_out: bool = False
    ) -> RouteState:
        """The state once a message was accepted (`error` None) or refused at `now`.

        A message that `timed_out` opens the route at once: a receiver that does not answer
        costs its full timeout for every message sent to it (three timeouts of 10 s added
        ~25% to a week's `aiops run`), where a refusal costs nothing; the other failures open
        it after `breaker_failures` in a row."""
        if error is None:
            return replace(
                self,
                failures=0,
                open_until=None,
                cooldown_seconds=None,
                last_error=None,
                last_success_at=now,
            )
        failures = self.failures + 1
        cooldown: float | None = None
        if self.tripped:  # the trial failed: wait longer
            previous = self.cooldown_seconds or cfg.breaker_cooldown_seconds
            cooldown = min(2 * previous, cfg.breaker_max_cooldown_seconds)
        elif failures >= cfg.breaker_failures or timed_out:
            cooldown = cfg.breaker_cooldown_seconds
        return replace(
            self,
            failures=failures,
            open_until=None if cooldown is None else now + timedelta(seconds=cooldown),
            cooldown_seconds=cooldown,
            last_error=error,
            last_failure_at=now,
        )

    def describe(self, now: datetime) -> str:
        """One line for a check, a log or the terminal."""
        failed = f"{self.failures} failed message(s) in a row"
        if self.is_open(now):
            assert self.open_until is not None
            until = self.open_until.isoformat(timespec="seconds")
            return f"open until {until} after {failed}: {self.last_error}"
        if self.tripped:
            return f"cool-down over, the next delivery sends one trial message: {self.last_error}"
        if self.failures:
            return f"failing, {failed}: {self.last_error}"
        return "ok"

    def save(self, store: MonitoringStore) -> None:
        store.save_route_state(
            self.route,
            failures=self.failures,
            open_until=self.open_until,
            cooldown_seconds=self.cooldown_seconds,
            last_error=self.last_error,
            last_failure_at=self.last_failure_at,
            last_success_at=self.last_success_at,
        )


def _value(row: dict[str, Any], name: str) -> Any:
    value = row.get(name)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def route_states(store: MonitoringStore, cfg: AlertingConfig) -> dict[str, RouteState]:
    """The stored state of every configured route (closed and clean when none is stored)."""
    stored = {str(r["route"]): r for r in store.route_states().to_dict("records")}
    out: dict[str, RouteState] = {}
    for route in cfg.routes:
        row = stored.get(route.name)
        if row is None:
            out[route.name] = RouteState(route.name)
            continue
        cooldown = _value(row, "cooldown_seconds")
        out[route.name] = RouteState(
            route=route.name,
            failures=int(row["failures"]),
            open_until=_value(row, "open_until"),
            cooldown_seconds=None if cooldown is None else float(cooldown),
            last_error=_value(row, "last_error"),
            last_failure_at=_value(row, "last_failure_at"),
            last_success_at=_value(row, "last_success_at"),
            summary_requested_at=_value(row, "summary_requested_at"),
        )
    return out
