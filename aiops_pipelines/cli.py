"""`aiops`: demo, validate, run and report from the terminal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiops_pipelines.core.config import aiops_home, load_config
from aiops_pipelines.core.errors import AiopsError, ConfigError
from aiops_pipelines.deploy import InstanceSettings

DEFAULT_INSTANCE = InstanceSettings()


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _quiet_libraries() -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore")


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{config.path}: the config is valid")
    problems = []
    for m in config.models:
        print(
            f"  {m.key:<28} {m.task.value:<26} {len(m.features.numeric)} numeric, "
            f"{len(m.features.categorical)} categorical features"
        )
        if not args.no_data:
            from aiops_pipelines.io.contract import check_sources

            problems += check_sources(m, sample_rows=args.sample_rows)
    if args.no_data:
        return 0
    notes = [p for p in problems if not p.blocking]
    problems = [p for p in problems if p.blocking]
    if notes:
        print(f"{len(notes)} note(s):")
        for p in notes:
            print(f"  {p}")
    from aiops_pipelines.io.tracking import PROBE_TIMEOUT_SECONDS, probe

    uri = config.storage.mlflow_tracking_uri
    mlflow_down = probe(uri)
    if problems:
        print(f"{len(problems)} data contract problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
    else:
        print(f"every source opened and its first {args.sample_rows:,} rows keep the contract: OK")
    if mlflow_down:
        print(
            f"MLflow tracking at {uri} did not answer within {PROBE_TIMEOUT_SECONDS:.0f} s: "
            f"{mlflow_down}. Start it or fix storage.mlflow_tracking_uri in {config.path} "
            "(until then runs store their results and queue their MLflow logging)",
            file=sys.stderr,
        )
    else:
        print(f"MLflow tracking at {uri} answers: OK")
    return 1 if problems or mlflow_down else 0


def _run(
    config_path: Path,
    start: date,
    end: date,
    models: list[str] | None,
    render_html: bool,
    labels: str = "replay",
    live: bool = False,
    expected_failures: set[tuple[str, str]] | None = None,
    refresh_reference: bool = False,
    overview: bool = True,
    runs: str = "range",
) -> int:
    from tqdm import tqdm

    if "aiops_pipelines.orchestration.partitions" not in sys.modules:
        # the daily partitions start at this config's start_date (read when they load)
        os.environ["AIOPS_CONFIG"] = str(Path(config_path).resolve())
    from aiops_pipelines.orchestration.runner import days_between, run_range

    expected = expected_failures or set()
    config = load_config(config_path)
    n_models = len(models) if models else len(config.models)
    total = len(days_between(start, end)) * n_models
    bar = tqdm(total=total, unit="partition", desc="monitoring", file=sys.stderr)
    started = datetime.now(UTC)

    def progress(o) -> None:
        if o.kind == "daily":
            bar.update(1)
            bar.set_postfix_str(f"{o.partition} {o.model}")
        if not o.success:
            note = " (injected)" if (o.model, o.partition) in expected else ""
            tqdm.write(f"FAILED{note} {o.model} {o.partition}: {o.error}", file=sys.stderr)

    try:
        outcome = run_range(
            config_path,
            start,
            end,
            models=models,
            render_html=render_html,
            refresh_reference=refresh_reference,
            labels=labels,
            live=live,
            overview=overview,
            runs=runs,  # type: ignore[arg-type]
            on_progress=progress,
        )
    finally:
        bar.close()  # before an error refusing the whole run is printed
    if outcome.debris:
        print(outcome.debris.summary())
    if outcome.mlflow_down:
        print(
            f"MLflow did not answer at the start ({outcome.mlflow_down}): results are stored "
            "and their MLflow logging queued"
        )
    daily = [o for o in outcome.outcomes if o.kind == "daily"]
    failed_daily = [o for o in daily if not o.success]
    print(f"{len(daily) - len(failed_daily)} partitions succeeded, {len(failed_daily)} failed")
    by_sensor: dict[str, list[int]] = {}
    for o in outcome.outcomes:
        if o.kind not in ("daily", "reference"):
            counts = by_sensor.setdefault(o.kind, [0, 0])
            counts[0 if o.success else 1] += 1
    for name, (ok, bad) in sorted(by_sensor.items()):
        print(f"{name}: launched {ok + bad} runs ({bad} failed)")
    _print_held(config, started)
    _print_routes(config)
    if outcome.mlflow_queued:
        print(
            f"{outcome.mlflow_queued} MLflow logging(s) queued: MLflow at "
            f"{config.storage.mlflow_tracking_uri} did not answer; they are logged by the next "
            "aiops run, or the mlflow_outbox_sensor, once it does"
        )
    unexpected = [o for o in outcome.failed if (o.model, o.partition) not in expected]
    if len(unexpected) < len(outcome.failed):
        print(f"{len(outcome.failed) - len(unexpected)} failed as injected (expected)")
    return 1 if unexpected else 0


def _report_html(config, args: argparse.Namespace) -> int:
    """Evidently's drift HTML of one model-day, from the stored profiles and samples."""
    from aiops_pipelines.io.store import REFERENCE_PARTITION, MonitoringStore
    from aiops_pipelines.signals.drift.day import drift_for_stored_day
    from aiops_pipelines.signals.profile.day import sample_path
    from aiops_pipelines.views.drift_report import render_day_html

    if not (args.model and args.day):
        print("aiops report --html needs --model and --day", file=sys.stderr)
        return 2
    model, day = config.model(args.model), args.day.isoformat()
    home = config.artifacts_path
    with MonitoringStore(config.storage.store_url) as store:
        ref = store.load_profile(model.tenant, model.name, "reference", REFERENCE_PARTITION)
        cur = store.load_profile(model.tenant, model.name, "daily", day)
        if ref is None or cur is None:
            print(
                f"{model.key} {day}: no {'reference' if ref is None else 'feature'} profile "
                f"stored: aiops run --config {config.path} --start {day} --end {day} "
                f"--model {model.key}",
                file=sys.stderr,
            )
            return 1
        result, _, _ = drift_for_stored_day(store, model, day, ref, cur)
    samples = [sample_path(home, model.key, p) for p in (REFERENCE_PARTITION, day)]
    missing = [str(p) for p in samples if not p.exists()]
    if missing:
        print(f"{model.key} {day}: no sample kept at {', '.join(missing)}", file=sys.stderr)
        return 1
    path = args.out or home / "reports" / model.key / f"drift_{day}.html"
    print(render_day_html(result, model, day, path.resolve(), *samples))
    return 0


def _print_held(config, since: datetime) -> None:
    """What this run held back instead of sending (events too old to page about)."""
    from aiops_pipelines.io.store import MonitoringStore

    with MonitoringStore(config.storage.store_url) as store:
        held = store.deliveries(status="held")
    held = held[held["created_at"] >= since]
    if held.empty:
        return
    age = config.alerting.max_event_age_days
    told = held.dropna(subset=["message_id"]).groupby("route")["message_id"].nunique()
    print(
        f"{len(held)} alert notification(s) older than {age} days recorded, not sent "
        f"(alerting.max_event_age_days); summary lines sent: "
        + (", ".join(f"{r}: {n}" for r, n in told.items()) or "none")
    )
    for route, rows in held[held["message_id"].isna()].groupby("route"):
        print(
            f"  route {route}: the summary of {len(rows)} is kept for the next run: "
            f"{rows['last_error'].dropna().iloc[-1] if rows['last_error'].notna().any() else ''}"
        )


def _print_routes(config) -> None:
    """Alert routes that did not take their notifications: failing, or open (their circuit
    breaker) until a cool-down ends. Their notifications wait in the outbox."""
    from aiops_pipelines.alerting.breaker import route_states
    from aiops_pipelines.io.store import MonitoringStore

    with MonitoringStore(config.storage.store_url) as store:
        states = route_states(store, config.alerting)
        waiting = store.outbox_waiting().set_index("route")
    now = datetime.now(UTC)
    for name, state in states.items():
        if state.failures or state.tripped:
            n = int(waiting.loc[name, "pending"]) if name in waiting.index else 0
            print(f"alert route {name}: {state.describe(now)}; {n} notification(s) pending")


def cmd_run(args: argparse.Namespace) -> int:
    if args.workers > 1:
        return _run_workers(args)
    return _run(
        Path(args.config),
        args.start,
        args.end,
        args.model,
        not args.no_html,
        labels="now" if args.labels_now else "replay",
        refresh_reference=args.refresh_reference,
        overview=not args.no_overview,
        runs="day" if args.day_runs else "range",
    )


def _run_workers(args: argparse.Namespace) -> int:
    """`aiops run --workers N`: the models split over N processes, each an `aiops run` of its
    models over the whole range (a model's days stay in order: a day's drift windows read the
    days before), then each day's delivery and the overview page (each chunk's last day's)
    once, here. Safe on every store:
    each (asset, partition) is locked while written, and two processes never run the same
    model; SQLite serialises their writes (PostgreSQL runs them side by side)."""
    import subprocess
    import tempfile
    from contextlib import ExitStack

    from aiops_pipelines.orchestration.runner import run_range

    config = load_config(args.config)
    keys = args.model or [m.key for m in config.models]
    for key in keys:
        config.model(key)  # an unknown model: the usual error, before anything starts
    n = min(args.workers, len(keys))
    groups = [keys[i::n] for i in range(n)]
    print(f"{len(keys)} model(s) over {n} worker process(es)", file=sys.stderr)
    base = [sys.executable, "-m", "aiops_pipelines.cli", "run", "--config", str(args.config)]
    base += ["--start", args.start.isoformat(), "--end", args.end.isoformat(), "--no-overview"]
    base += [f for f, on in (("--no-html", args.no_html), ("--labels-now", args.labels_now),
             ("--refresh-reference", args.refresh_reference), ("--day-runs", args.day_runs))
             if on]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aiops-workers-") as tmp, ExitStack() as files:
        procs = []
        for i, group in enumerate(groups):
            out = files.enter_context(Path(tmp, f"{i}.out").open("w"))
            err = files.enter_context(Path(tmp, f"{i}.err").open("w"))
            cmd = [*base, *(a for k in group for a in ("--model", k))]
            procs.append((group, subprocess.Popen(cmd, stdout=out, stderr=err)))
        succeeded = failed = code = 0
        for i, (group, proc) in enumerate(procs):
            code = max(code, proc.wait())
            text = Path(tmp, f"{i}.out").read_text()
            failures = [
                line
                for line in Path(tmp, f"{i}.err").read_text().splitlines()
                if line.startswith(("FAILED", "Traceback", "aiops:")) or "Error" in line[:40]
            ]
            found = re.search(r"(\d+) partitions succeeded, (\d+) failed", text)
            if found:
                succeeded += int(found.group(1))
                failed += int(found.group(2))
            print(f"worker {i + 1} ({', '.join(group)}): exit {proc.returncode}")
            for line in failures + [
                x for x in text.splitlines() if "partitions succeeded" not in x
            ]:
                print(f"  {line}")
    if not args.no_overview:  # the pages once, over every model's results
        run_range(args.config, args.start, args.end, daily=False, render_html=not args.no_html)
    print(f"{succeeded} partitions succeeded, {failed} failed")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from aiops_pipelines.io.store import MonitoringStore
    from aiops_pipelines.views.report import model_summary, without_hourly

    config = load_config(args.config)
    if args.html:
        return _report_html(config, args)
    models = [config.model(args.model)] if args.model else config.models
    frames, finds = [], []
    with MonitoringStore(config.storage.store_url) as store:
        for m in models:
            h = store.metric_history(
                m.tenant,
                m.name,
                metric=args.metric,
                asset=args.asset,
                column=args.column,
                start=args.start,
                end=args.end,
            )
            frames.append(h)
            finds.append(store.findings(m.tenant, m.name, start=args.start, end=args.end))
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    findings = pd.concat(finds, ignore_index=True) if finds else pd.DataFrame()
    if not (args.hourly or args.metric):
        history = without_hourly(history)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "metrics": json.loads(history.to_json(orient="records")),
                    "findings": json.loads(findings.to_json(orient="records", default_handler=str)),
                },
                indent=1,
            )
        )
    elif args.format == "csv":
        if args.findings:
            findings.drop(columns=["evidence"], errors="ignore").to_csv(sys.stdout, index=False)
        else:
            history.to_csv(sys.stdout, index=False)
    elif not (args.metric or args.asset or args.column or args.findings or args.hourly):
        # the default: one readable summary per model
        for m, h, f in zip(models, frames, finds, strict=True):
            print(model_summary(m, h, f))
            print()
    else:
        if not args.findings:
            if history.empty:
                print("no metric history stored")
            else:
                wide = history.assign(
                    name=history["metric"] + history["column"].map(lambda c: f"[{c}]" if c else "")
                ).pivot_table(
                    index=["tenant", "model", "partition"],
                    columns="name",
                    values="value",
                    aggfunc="last",
                )
                with pd.option_context("display.max_columns", 12, "display.width", 160):
                    print(wide.round(4).to_string())
        print()
        if findings.empty:
            print("no findings")
        else:
            cols = [
                "partition",
                "tenant",
                "model",
                "signal",
                "column",
                "severity",
                "value",
                "threshold",
            ]
            print(findings[cols].round(4).to_string(index=False))
    return 0


def _day_range(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def cmd_demo(args: argparse.Namespace) -> int:
    from aiops_pipelines.demo.grading import actions_summary, alerts_summary, detection_summary
    from aiops_pipelines.demo.receiver import AlertReceiver
    from aiops_pipelines.demo.world import DEMO_SLACK_ENV, DEMO_WEBHOOK_ENV, build_world
    from aiops_pipelines.io.store import MonitoringStore
    from aiops_pipelines.views.status import status_text

    home = Path(args.home).expanduser().resolve() if args.home else aiops_home()
    os.environ["AIOPS_HOME"] = str(home)
    demo_dir = home / "demo"
    end = args.end or (datetime.now(UTC).date() - timedelta(days=1))
    t0 = time.perf_counter()
    print(f"building the demo world under {demo_dir} ...", flush=True)
    world = build_world(demo_dir, days=args.days, end_date=end, rows_per_day=args.rows_per_day)
    print(
        f"  world ready in {time.perf_counter() - t0:.0f}s: {len(world.models)} models, "
        f"{world.manifest['start']} .. {world.manifest['end']}",
        flush=True,
    )
    if args.no_run:
        return 0
    # a rebuilt world starts from an empty store: findings of an earlier world would mislead
    for stale in demo_dir.glob("store.db*"):
        if stale.is_file():  # the database and its WAL files; `store.db.locks/` holds no data
            stale.unlink()
    start = date.fromisoformat(world.manifest["start"])
    end = date.fromisoformat(world.manifest["end"])
    # injected failures (a bad batch) are expected: they must fail, and reach the feed
    expected = {
        (inc["model"], day)
        for inc in world.manifest["incidents"]
        if inc["kind"] == "bad_batch"
        for day in _day_range(inc["start"], inc.get("end") or inc["start"])
    }
    with AlertReceiver() as receiver:  # the demo's webhook routes post here
        os.environ[DEMO_WEBHOOK_ENV] = receiver.url("/acme-webhook")
        os.environ[DEMO_SLACK_ENV] = receiver.url("/globex-slack")
        try:
            code = _run(
                world.config_path,
                start,
                end,
                None,
                not args.no_html,
                labels="replay",
                live=True,
                expected_failures=expected,
            )
        finally:
            os.environ.pop(DEMO_WEBHOOK_ENV, None)
            os.environ.pop(DEMO_SLACK_ENV, None)
    config = load_config(world.config_path)
    with MonitoringStore(config.storage.store_url) as store:
        summary = detection_summary(world.manifest, store.findings())
        actions = actions_summary(demo_dir, store, config.storage.mlflow_tracking_uri)
        alerts = alerts_summary(store, receiver)
        # the feed of what a person was told (alert changes) and what was done (actions)
        feed = status_text(
            store,
            config,
            day=end.isoformat(),
            alerts=store.alerts(),
            days=(end - start).days + 1,
            limit=200,
            kinds=("alert", "action"),
        )
        # the demo's store is new: a ready admin token for the console (README: Console)
        _, console_token = store.create_token(tenant=None, role="admin", name="demo-admin")
    print()
    print(feed)
    print(summary.render())
    print(actions)
    print()
    print(alerts)
    print()
    overview = config.artifacts_path / "overview" / f"overview_{end.isoformat()}.html"
    if overview.exists():
        print(f"Overview:    {overview.resolve().as_uri()}")
    print(f"Dagster UI:  make ui   (DAGSTER_HOME={home / 'dagster'})")
    print(
        f"MLflow UI:   .venv/bin/mlflow ui --backend-store-uri "
        f"{config.storage.mlflow_tracking_uri} --port 5000"
    )
    print(f"Report:      aiops report --config {world.config_path}")
    print(
        "Console:     make console   then open http://127.0.0.1:8080/ and log in with this "
        f"admin token (shown once; more: aiops tokens create --config {world.config_path})\n"
        f"             {console_token}"
    )
    size = sum(f.stat().st_size for f in home.rglob("*") if f.is_file())
    print(f"demo finished in {time.perf_counter() - t0:.0f}s; {home} holds {size / 1e6:.0f} MB")
    if code == 0 and not summary.all_detected:
        return 3
    return code


def cmd_canary(args: argparse.Namespace) -> int:
    from aiops_pipelines.io.store import MonitoringStore
    from aiops_pipelines.lifecycle.actions import restore_previous_champion, start_canary
    from aiops_pipelines.lifecycle.registry import aliases

    config = load_config(args.config)
    model = config.model(args.model)
    uri = config.storage.mlflow_tracking_uri
    with MonitoringStore(config.storage.store_url) as store:
        common = {"store": store, "tenant": model.tenant, "model": model.name}
        if args.action == "start":
            change = start_canary(
                uri,
                model.registry_name,
                args.version,
                actor="cli",
                partition_day=args.day.isoformat() if args.day else None,
                **common,
            )
        elif args.action == "restore":
            change = restore_previous_champion(uri, model.registry_name, **common)
        else:
            print(json.dumps(aliases(uri, model.registry_name), indent=1))
            return 0
    print(change.message)
    print(f"aliases now: {change.aliases_after}")
    return 0


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"expected a number of days >= 1, got {text!r}")
    return days


def _day_or_latest(args: argparse.Namespace, store) -> str | None:
    """`--day`, else the latest partition stored (None, said, when nothing is stored)."""
    from aiops_pipelines.views.overview import latest_partition

    day = args.day.isoformat() if args.day else latest_partition(store)
    if day is None:
        print(f"nothing stored yet in {store.url}: run the daily assets first (aiops run)")
    return day


def cmd_status(args: argparse.Namespace) -> int:
    from aiops_pipelines.alerting.rules import alerts_as_of
    from aiops_pipelines.io.store import MonitoringStore
    from aiops_pipelines.views.status import status_text

    config = load_config(args.config)
    with MonitoringStore(config.storage.store_url) as store:
        day = _day_or_latest(args, store)
        if day is None:
            return 0
        alerts = alerts_as_of(store, config.alerting, day)  # as they were that day
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        kinds = [k.strip() for k in args.only.split(",")] if args.only else None
        text = status_text(
            store, config, day=day, alerts=alerts, days=args.days, color=color, kinds=kinds
        )
        print(text, end="")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from aiops_pipelines.alerting.rules import alerts_as_of
    from aiops_pipelines.io.store import MonitoringStore
    from aiops_pipelines.views.prometheus import (
        CachedPage,
        Snapshot,
        exposition,
        gauge_samples,
        serve_metrics,
    )
    from aiops_pipelines.views.telemetry import GaugeExport, metrics_endpoint

    config = load_config(args.config)
    day = args.day.isoformat() if args.day else None
    otlp = None
    if args.otlp or args.otlp_endpoint:
        otlp = metrics_endpoint(config.telemetry, args.otlp_endpoint)
        if otlp is None:
            raise ConfigError(
                "aiops metrics --otlp: no OTLP endpoint: give --otlp-endpoint URL, or set "
                "telemetry.otlp_endpoint in the config or OTEL_EXPORTER_OTLP_ENDPOINT"
            )
    with MonitoringStore(config.storage.store_url) as store:

        def build() -> Snapshot:
            if day is None:
                alerts, deliveries = store.alerts(), store.deliveries()
            else:  # as they were that day
                alerts = alerts_as_of(store, config.alerting, day)
                deliveries = store.deliveries()
                deliveries = deliveries[deliveries["partition"] <= day]
            gauges = gauge_samples(store, config, day=day, alerts=alerts, deliveries=deliveries)
            return Snapshot(gauges, exposition(gauges))

        if args.serve is None and otlp is None:
            print(build().text, end="")
            return 0
        # scrapes and exports are answered from the last read until the store changes
        snapshot = CachedPage(build, store.change_marker, min_age=args.min_age)
        snapshot()  # read before it listens: the first scrapes do not wait for it
        interval = config.telemetry.metrics_interval_seconds
        if args.otlp_interval is not None:
            interval = args.otlp_interval
        if interval <= 0:
            raise ConfigError(f"aiops metrics --otlp-interval must be > 0 seconds, got {interval}")
        export = GaugeExport.otlp(snapshot, otlp, interval) if otlp else None
        # a service manager stops us with SIGTERM: end as on Ctrl-C (a last export)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            if export is not None:
                print(f"exporting to {otlp} every {interval:g} s (Ctrl-C to stop)", flush=True)
            if args.serve is None:
                threading.Event().wait()
            else:

                def ready(url: str) -> None:
                    print(f"serving {url} (Ctrl-C to stop)", flush=True)

                serve_metrics(
                    lambda: snapshot().text, host=args.host, port=args.serve, on_ready=ready
                )
        except KeyboardInterrupt:
            pass
        finally:
            if export is not None:
                export.shutdown()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_overview(args: argparse.Namespace) -> int:
    from aiops_pipelines.io.store import MonitoringStore
    from aiops_pipelines.views.page import write_overview

    config = load_config(args.config)
    with MonitoringStore(config.storage.store_url) as store:
        day = _day_or_latest(args, store)
        if day is None:
            return 0
        page = write_overview(store, config, day, path=Path(args.out) if args.out else None)
    print(page.path.resolve().as_uri())
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    import secrets

    import uvicorn

    from aiops_pipelines.views.console.app import CONFIG_ENV, SECRET_ENV

    load_config(args.config)  # a bad config fails here, once, with its message
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {args.host}: anyone who can reach it may try tokens; "
            "put it behind TLS",
            file=sys.stderr,
        )
    if args.workers < 1:
        raise AiopsError(f"--workers {args.workers}: at least 1")
    os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    os.environ[SECRET_ENV] = secrets.token_hex(32)
    print(f"console at http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(
        "aiops_pipelines.views.console.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    import pandas as pd

    from aiops_pipelines.io.store import MonitoringStore

    config = load_config(args.config)
    with MonitoringStore(config.storage.store_url) as store:
        if args.action == "create":
            ident, token = store.create_token(
                tenant=args.tenant, role=args.role, name=args.name or "", created_by="cli"
            )
            print(f"token {ident} ({args.role}, tenant {args.tenant or 'every'}): shown once")
            print(token)
        elif args.action == "list":
            frame = store.tokens()
            for r in frame.itertuples(index=False):
                revoked = pd.notna(r.revoked_at)
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if revoked else "live"
                print(f"{r.id}\t{r.name}\t{r.role}\t{r.tenant}\t{r.prefix}...\t{state}")
        else:
            if args.id is None:
                raise AiopsError("tokens revoke needs --id N (see `aiops tokens list`)")
            if not store.revoke_token(args.id):
                raise AiopsError(f"no live token {args.id} (see `aiops tokens list`)")
            print(f"token {args.id} revoked")
    return 0


def cmd_instance(args: argparse.Namespace) -> int:
    import importlib.util

    from aiops_pipelines.deploy import (
        Written,
        default_dagster_home,
        render_instance_yaml,
        url_problem,
        write_instance_yaml,
    )

    settings = InstanceSettings(
        postgres_url_env=args.postgres_url_env,
        max_concurrent_runs=args.max_concurrent_runs,
        per_tenant=args.per_tenant,
    )
    if args.stdout:
        print(render_instance_yaml(settings), end="")
        return 0
    home = Path(args.dagster_home).expanduser().resolve() if args.dagster_home else None
    home = home or default_dagster_home()
    written = write_instance_yaml(home, settings, force=args.force)
    env = settings.postgres_url_env
    print(
        f"{written.path}: {written.outcome.value}. Runs, event logs and schedules in PostgreSQL "
        f"(${env}); queued runs, at most {settings.max_concurrent_runs} in progress and "
        f"{settings.per_tenant} per tenant; run monitoring on"
    )
    if written.backup:
        print(f"the previous file is kept as {written.backup}")
    if written.outcome is not Written.UNCHANGED and (home / "storage").exists():
        print(
            f"the runs recorded in SQLite under {home / 'storage'} stay there: the UI on this "
            "instance shows those in PostgreSQL only"
        )
    if importlib.util.find_spec("dagster_postgres") is None:
        print(
            'dagster-postgres is not installed here: pip install "aiops-pipelines[postgres]"',
            file=sys.stderr,
        )
    url = os.environ.get(env)
    if not url:
        print(f"${env} is not set here: every process opening the instance needs it")
    elif problem := url_problem(url):
        print(f"${env} holds {problem}", file=sys.stderr)
    print(
        "next:\n"
        f"  export {env}=postgresql+psycopg2://USER:PASSWORD@HOST:5432/DATABASE\n"
        f"  DAGSTER_HOME={home} dagster-daemon run -w workspace.yaml      # dequeues the runs\n"
        f"  DAGSTER_HOME={home} dagster-webserver -w workspace.yaml -p 3000"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiops", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="build the demo world and monitor every day of it")
    d.add_argument("--home", help="home folder (default $AIOPS_HOME or ~/.aiops)")
    d.add_argument("--days", type=int, default=64)
    d.add_argument("--rows-per-day", type=int, default=3000)
    d.add_argument("--end", type=_date, help="last demo day (default yesterday, UTC)")
    d.add_argument("--no-run", action="store_true", help="only build the world")
    d.add_argument("--no-html", action="store_true", help="skip Evidently's HTML reports")
    d.set_defaults(func=cmd_demo)

    v = sub.add_parser(
        "validate", help="validate a config file and the data contract of every source"
    )
    v.add_argument("--config", required=True)
    v.add_argument(
        "--sample-rows", type=int, default=2000, help="rows read from each source (default 2000)"
    )
    v.add_argument("--no-data", action="store_true", help="check the config file only")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="materialize the daily assets over a date range")
    r.add_argument("--config", required=True)
    r.add_argument("--start", type=_date, required=True)
    r.add_argument("--end", type=_date, required=True)
    r.add_argument("--model", action="append", help="tenant.model (repeatable; default all)")
    r.add_argument("--no-html", action="store_true", help="skip Evidently's HTML reports")
    r.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run the models in this many processes at once (each model's days in order)",
    )
    r.add_argument("--no-overview", action="store_true", help="write no overview page for the days")
    r.add_argument(
        "--day-runs",
        action="store_true",
        help="one Dagster run per (day, model), as before range runs (default: one run per "
        "model for up to 31 days, or up to each weekly late-label tick)",
    )
    r.add_argument(
        "--labels-now",
        action="store_true",
        help="judge every day with the outcomes known now (default: each day with those "
        "observed by its end, as on-call saw it, late labels re-judged as they arrived)",
    )
    r.add_argument(
        "--refresh-reference",
        action="store_true",
        help="rebuild each model's reference profile first (needed after its features changed "
        "in the config; the days after are judged against the new one)",
    )
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser(
        "report",
        help="a summary per model (default), or the metric history and findings from the store",
    )
    rep.add_argument("--config", required=True)
    rep.add_argument("--model", help="tenant.model (default all)")
    rep.add_argument("--format", choices=["table", "csv", "json"], default="table")
    rep.add_argument("--metric", help="only this metric, e.g. drift_share")
    rep.add_argument("--column", help="only this column ('' for model-level metrics)")
    rep.add_argument("--asset", help="only this asset, e.g. drift_report")
    rep.add_argument("--start", type=_date, help="first partition (YYYY-MM-DD)")
    rep.add_argument("--end", type=_date, help="last partition (YYYY-MM-DD)")
    rep.add_argument("--findings", action="store_true", help="table/csv: findings only")
    rep.add_argument(
        "--html",
        action="store_true",
        help="write Evidently's drift HTML of --model on --day (runs render it only for days "
        "with a drift finding) and print its path",
    )
    rep.add_argument("--day", type=_date, help="--html: the day")
    rep.add_argument("--out", type=Path, help="--html: where to write it (default: reports/)")
    rep.add_argument(
        "--hourly",
        action="store_true",
        help="include the hourly series (left out unless asked, or named by --metric)",
    )
    rep.set_defaults(func=cmd_report)
    c = sub.add_parser(
        "canary",
        help="start a canary (default: the retrained challenger), restore the previous "
        "champion, or show the aliases",
    )
    c.add_argument("action", choices=["start", "restore", "show"])
    c.add_argument("--config", required=True)
    c.add_argument("--model", required=True, help="tenant.model")
    c.add_argument("--version", help="start: the version (default: the challenger)")
    c.add_argument("--day", type=_date, help="start: first day of canary traffic (default today)")
    c.set_defaults(func=cmd_canary)

    st = sub.add_parser("status", help="health per model and the anomaly feed, as a table")
    st.add_argument("--config", required=True)
    st.add_argument("--day", type=_date, help="the day (default: the latest partition stored)")
    st.add_argument("--days", type=_days, default=7, help="days of feed (default 7)")
    st.add_argument(
        "--color", choices=["auto", "always", "never"], default="never", help="colour the status"
    )
    st.add_argument(
        "--only", metavar="KINDS", help="feed entries to show: finding,action,alert (default all)"
    )
    st.set_defaults(func=cmd_status)

    ov = sub.add_parser("overview", help="write the day's overview page (self-contained HTML)")
    ov.add_argument("--config", required=True)
    ov.add_argument("--day", type=_date, help="the day (default: the latest partition stored)")
    ov.add_argument("--out", help="the HTML file (default: <artifacts>/overview/overview_DAY.html)")
    ov.set_defaults(func=cmd_overview)

    mt = sub.add_parser(
        "metrics",
        help="the latest gauges: Prometheus text format, --serve, --otlp (README: Telemetry)",
    )
    mt.add_argument("--config", required=True)
    mt.add_argument("--day", type=_date, help="read partitions up to this day (default: all)")
    mt.add_argument("--serve", type=int, metavar="PORT", help="serve them at :PORT/metrics")
    mt.add_argument("--host", default="127.0.0.1", help="--serve: address to bind")
    mt.add_argument(
        "--min-age",
        type=float,
        default=5.0,
        help="--serve/--otlp: seconds a read is reused before the store is checked for changes",
    )
    mt.add_argument(
        "--otlp",
        action="store_true",
        help="export the gauges over OTLP/HTTP until stopped, to telemetry.otlp_endpoint or "
        "OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT (README: Telemetry); with --serve, both",
    )
    mt.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="--otlp to this OTLP/HTTP base URL (e.g. http://127.0.0.1:4318)",
    )
    mt.add_argument(
        "--otlp-interval",
        type=float,
        metavar="S",
        help="--otlp: seconds between exports (default telemetry.metrics_interval_seconds, 60)",
    )
    mt.set_defaults(func=cmd_metrics)

    con = sub.add_parser("console", help="serve the web console over the store (README: Console)")
    con.add_argument("--config", required=True)
    con.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    con.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    con.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default 1; more use more cores, each with its own cache)",
    )
    con.set_defaults(func=cmd_console)

    tok = sub.add_parser("tokens", help="create, list or revoke the console's API tokens")
    tok.add_argument("action", choices=["create", "list", "revoke"])
    tok.add_argument("--config", required=True)
    tok.add_argument("--tenant", help="create: the tenant it reads (not for an admin)")
    tok.add_argument(
        "--role",
        choices=["viewer", "operator", "admin"],
        default="viewer",
        help="create: viewer reads; operator also silences and acknowledges; admin reads "
        "every tenant and the audit (default viewer)",
    )
    tok.add_argument("--name", help="create: a name to recognise it by")
    tok.add_argument("--id", type=int, help="revoke: the token's id")
    tok.set_defaults(func=cmd_tokens)

    ins = sub.add_parser(
        "instance",
        help="write a production Dagster instance: PostgreSQL storage, queued runs with a "
        "limit per tenant, run monitoring (README: Production instance)",
    )
    ins.add_argument(
        "--postgres-url-env",
        default=DEFAULT_INSTANCE.postgres_url_env,
        metavar="VAR",
        help="environment variable holding the PostgreSQL URL, read whenever the instance is "
        f"opened (default {DEFAULT_INSTANCE.postgres_url_env})",
    )
    ins.add_argument(
        "--max-concurrent-runs",
        type=int,
        default=DEFAULT_INSTANCE.max_concurrent_runs,
        help=f"runs in progress at once (default {DEFAULT_INSTANCE.max_concurrent_runs})",
    )
    ins.add_argument(
        "--per-tenant",
        type=int,
        default=DEFAULT_INSTANCE.per_tenant,
        help=f"runs of one tenant in progress at once (default {DEFAULT_INSTANCE.per_tenant})",
    )
    ins.add_argument(
        "--dagster-home",
        help="the folder to write dagster.yaml into (default $DAGSTER_HOME, "
        "else <aiops home>/dagster)",
    )
    ins.add_argument(
        "--force", action="store_true", help="replace a different dagster.yaml (kept as .bak)"
    )
    ins.add_argument("--stdout", action="store_true", help="print the file instead of writing it")
    ins.set_defaults(func=cmd_instance)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.func(args)
    except AiopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
