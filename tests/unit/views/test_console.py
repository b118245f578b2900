"""The console's API and pages over HTTP, against `aiops console` running on loopback over a
real SQLite store (the view tests' two tenants, their alerts evaluated by the real rules):
tenant isolation on every endpoint, roles, revoked tokens, the data-access audit, CSRF on
cookie sessions, and hostile text staying text."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from aiops_pipelines.alerting.rules import evaluate_and_store
from aiops_pipelines.cli import build_parser, main
from aiops_pipelines.core.config import AppConfig, load_config
from aiops_pipelines.core.findings import Severity
from aiops_pipelines.io.store import MonitoringStore
from tests.servers import ConsoleServer
from tests.unit.views.hostile import PAYLOADS, markup_from_data
from tests.unit.views.support import LAST, _config_dict, _fill, _finding


@dataclass
class Console:
    url: str
    config: Path
    cfg: AppConfig
    store: MonitoringStore
    tokens: dict[str, str]
    ids: dict[str, int]

    def get(self, path: str, who: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return requests.get(self.url + path, headers=headers, timeout=30, **kw)

    def post(self, path: str, who: str, json: dict) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return requests.post(self.url + path, headers=headers, json=json, timeout=30)

    def fingerprint(self, tenant: str, signal: str) -> str:
        alerts = self.store.alerts(tenant)
        return str(alerts[alerts["signal"] == signal]["fingerprint"].iloc[0])


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(_config_dict(tmp)))
    cfg = load_config(path)
    store = MonitoringStore(cfg.storage.store_url)
    _fill(store)
    for i, payload in enumerate(PAYLOADS):  # a category value, as an unseen-category finding
        store.record_finding(
            _finding(
                "acme",
                "churn",
                LAST,
                "drift_report",
                "unseen_categories",
                "warning",
                f"plan{i}",
                f"plan: 40% of values unseen in the reference: {payload}",
            )
        )
    for tenant, model in (("acme", "churn"), ("globex", "eta")):
        evaluate_and_store(store, cfg.alerting, tenant, model, LAST, today=LAST)
    tokens, ids = {}, {}
    for who, tenant, role in (
        ("admin", None, "admin"),
        ("acme", "acme", "viewer"),
        ("acme-op", "acme", "operator"),
        ("globex", "globex", "viewer"),
        ("revoked", "acme", "operator"),
    ):
        ids[who], tokens[who] = store.create_token(tenant=tenant, role=role, name=who)
    store.revoke_token(ids["revoked"])
    server = ConsoleServer(path, tmp / "server")
    try:
        yield Console(server.url, path, cfg, store, tokens, ids)
    finally:
        server.close()
        store.close()


READS = [
    "/api/v1/models",
    "/api/v1/overview",
    "/api/v1/alerts",
    "/api/v1/feed?days=10",
    "/api/v1/silences",
    "/api/v1/models/acme/churn?days=10",
    "/",
    "/feed?days=10",
    "/alerts",
    "/models/acme/churn?days=10",
]


def test_a_tenant_token_reads_nothing_of_another_tenant(console: Console) -> None:
    for path in READS:
        res = console.get(path, "acme")
        assert res.status_code == 200, path
        assert "globex" not in res.text and "eta" not in re.findall(r"\beta\b", res.text), path
    models = console.get("/api/v1/models", "acme").json()
    assert {m["key"] for m in models} == {"acme.churn", "acme.fraud"}
    globex_alert = console.fingerprint("globex", "pipeline_failure")
    for path in (
        "/api/v1/models/globex/eta",
        "/api/v1/models/globex/eta/features/distance?day=" + LAST,
        f"/api/v1/alerts/{globex_alert}",
        "/models/globex/eta",
        f"/alerts?fingerprint={globex_alert}",
    ):
        res = console.get(path, "acme")
        assert res.status_code == 404, path
        assert "1500" not in res.text and "pipeline_failure" not in res.text
    assert console.get("/api/v1/feed?tenant=globex&days=10", "acme").json()["rows"] == []
    # and the other way round
    assert {m["key"] for m in console.get("/api/v1/models", "globex").json()} == {"globex.eta"}
    assert console.get("/api/v1/models/acme/churn", "globex").status_code == 404


def test_an_admin_reads_every_tenant_and_the_audit(console: Console) -> None:
    keys = {m["key"] for m in console.get("/api/v1/models", "admin").json()}
    assert keys == {"acme.churn", "acme.fraud", "globex.eta"}
    view = console.get("/api/v1/overview", "admin").json()
    assert view["day"] == LAST and {t["tenant"] for t in view["tenants"]} == {"acme", "globex"}
    churn = next(m for m in view["models"] if m["key"] == "acme.churn")
    assert churn["status"] == "critical" and churn["primary_metric"] == "roc_auc"
    audit = console.get("/api/v1/audit", "admin").json()
    assert audit["access"] and {"actor", "tenant", "path", "status"} <= set(audit["access"][0])
    assert console.get("/api/v1/audit", "acme").status_code == 403
    assert console.get("/audit", "acme-op").status_code == 403


def test_the_model_api_serves_the_pages_charts(console: Console) -> None:
    detail = console.get(f"/api/v1/models/acme/churn?day={LAST}&days=10", "acme").json()
    drift = detail["drift"]
    assert drift["features"] == ["age", "tenure", "plan"] and drift["days"][-1] == LAST
    age = drift["level"][0]
    assert age[-1] == Severity.CRITICAL.rank and age[-3] == Severity.WARNING.rank
    perf = detail["performance"]
    assert perf["metric"] == "roc_auc" and perf["reference"] == 0.9
    assert set(perf["limits"]) == {"warning", "critical"} and perf["coverage"][-1] == 0.0
    assert detail["ops"]["series"]["latency_p95"][-1] == 85.0
    assert [v["signal"] for v in detail["canary"]["verdicts"]] == ["canary_fail"]
    # the audit trail of the model, the latest recorded first
    assert [a["action"] for a in detail["actions"]] == [
        "start_canary",
        "retrain",
        "rollback_canary",
    ]


def test_a_viewer_cannot_silence_or_acknowledge(console: Console) -> None:
    fp = console.fingerprint("acme", "feature_drift")
    before = len(console.store.silences())
    res = console.post(f"/api/v1/alerts/{fp}/silence", "acme", {"hours": 2, "comment": "x"})
    assert res.status_code == 403
    assert console.post(f"/api/v1/alerts/{fp}/acknowledge", "acme", {}).status_code == 403
    assert len(console.store.silences()) == before
    assert console.store.acknowledgements().empty


def test_an_operator_silences_an_alert_and_it_is_muted(console: Console) -> None:
    fp = console.fingerprint("acme", "feature_drift")
    assert "muted)" not in console.get("/", "acme").text  # the overview is built and cached
    res = console.post(
        f"/api/v1/alerts/{fp}/silence", "acme-op", {"hours": 2, "comment": "vendor change"}
    )
    assert res.status_code == 201, res.text
    # the page opened right after shows it muted: not the view cached a moment before
    assert "(1 muted)" in console.get("/", "acme").text
    (alert,) = [a for a in console.get("/api/v1/alerts", "acme").json() if a["fingerprint"] == fp]
    assert alert["muted"] and alert["silence"]["comment"] == "vendor change"
    assert alert["silence"]["created_by"] == f"token:acme-op#{console.ids['acme-op']}"
    # the rules honour it: evaluated now, the alert is silenced and nothing new is sent for it
    before = console.store.alert_events("acme", "churn")
    evaluate_and_store(console.store, console.cfg.alerting, "acme", "churn", LAST, today=LAST)
    states = console.store.alerts("acme", "churn")
    assert bool(states[states["fingerprint"] == fp]["silenced"].iloc[0])
    after = console.store.alert_events("acme", "churn")
    assert len(after) == len(before)
    # an audit action names who silenced it; a tenant cannot silence another's alert
    acts = console.store.actions("acme", "churn", action="silence")
    assert acts.iloc[-1]["details"]["fingerprint"] == fp
    globex = console.fingerprint("globex", "pipeline_failure")
    res = console.post(f"/api/v1/alerts/{globex}/silence", "acme-op", {"hours": 1, "comment": "x"})
    assert res.status_code == 404
    assert console.store.silences("globex").empty
    # bad input: a clear 4xx, nothing stored
    for body in ({"comment": "no end"}, {"hours": -1, "comment": "x"}, {"hours": 1}):
        res = console.post(f"/api/v1/alerts/{fp}/silence", "acme-op", body)
        assert res.status_code in (400, 422), body
    assert len(console.store.silences("acme")) == 1


def test_a_revoked_token_is_refused(console: Console) -> None:
    for path in ("/api/v1/models", "/api/v1/alerts"):
        assert console.get(path, "revoked").status_code == 401
    res = console.get("/", "revoked", allow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/login"
    res = requests.post(
        console.url + "/login", data={"token": console.tokens["revoked"]}, timeout=30
    )
    assert res.status_code == 401 and "unknown or revoked token" in res.text
    fp = console.fingerprint("acme", "performance_decay")
    res = console.post(f"/api/v1/alerts/{fp}/acknowledge", "revoked", {"comment": "x"})
    assert res.status_code == 401


def test_every_request_leaves_an_audit_row(console: Console) -> None:
    log = console.store.access_log(limit=1)
    last = int(log["id"].iloc[0]) if len(log) else 0
    calls = [
        (console.get, "/api/v1/models", "acme", 200),
        (console.get, "/api/v1/models/globex/eta", "acme", 404),
        (console.get, "/api/v1/audit", "acme", 403),
        (console.get, "/api/v1/models", "revoked", 401),
        (console.get, "/alerts", "admin", 200),
    ]
    for call, path, who, status in calls:
        assert call(path, who).status_code == status
    rows = console.store.access_log(since_id=last).iloc[::-1]
    assert [(r.path, r.status) for r in rows.itertuples()] == [
        (p.split("?")[0], s) for _, p, _, s in calls
    ]
    actors = list(rows["actor"])
    assert actors[0] == f"token:acme#{console.ids['acme']}" and actors[3] == "anonymous"
    assert list(rows["tenant"])[:3] == ["acme"] * 3 and rows.iloc[4]["tenant"] == "*"
    assert rows.iloc[1]["target"] == "globex.eta"
    # the token itself is written nowhere: not in the audit, not in the store file
    blob = Path(console.cfg.storage.store_url.removeprefix("sqlite:///")).read_bytes()
    for token in console.tokens.values():
        assert token.encode() not in blob


def _session(console: Console, who: str) -> requests.Session:
    s = requests.Session()
    res = s.post(console.url + "/login", data={"token": console.tokens[who]}, timeout=30)
    assert res.status_code == 200 and "Overview" in res.text  # redirected to it
    cookie = res.history[0].headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return s


def test_cookie_mutations_need_the_pages_csrf_token_and_origin(console: Console) -> None:
    s = _session(console, "acme-op")
    fp = console.fingerprint("acme", "performance_decay")
    page = s.get(f"{console.url}/alerts?fingerprint={fp}", timeout=30).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    url = f"{console.url}/alerts/{fp}/acknowledge"
    assert s.post(url, data={"comment": "x"}, timeout=30).status_code == 403
    assert s.post(url, data={"comment": "x", "csrf": "0" * 64}, timeout=30).status_code == 403
    evil = {"Origin": "http://evil.example"}
    res = s.post(url, data={"comment": "x", "csrf": csrf}, headers=evil, timeout=30)
    assert res.status_code == 403
    assert console.store.acknowledgements("acme").empty
    res = s.post(url, data={"comment": "on it", "csrf": csrf}, timeout=30)
    assert res.status_code == 200 and "acknowledged by token:acme-op" in res.text
    (ack,) = console.store.acknowledgements("acme").to_dict("records")
    assert ack["fingerprint"] == fp and ack["comment"] == "on it"


def test_hostile_values_are_shown_as_text(console: Console) -> None:
    feed = console.get("/api/v1/feed?days=1&signal=unseen_categories", "acme").json()
    found = [r for r in feed["rows"] if r["kind"] == "finding"]
    assert sorted(r["column"] for r in found) == [f"plan{i}" for i in range(len(PAYLOADS))]
    assert {r["message"].rsplit("reference: ", 1)[1] for r in found} == set(PAYLOADS)
    for path in ("/", "/feed?days=10", "/alerts", "/models/acme/churn?days=10"):
        page = console.get(path, "admin").text
        assert markup_from_data(page) == [], path
    page = console.get("/feed?days=10", "admin").text
    assert "&lt;/title&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in page  # escaped, shown


def test_the_api_is_documented_and_the_console_binds_loopback(console: Console) -> None:
    spec = requests.get(console.url + "/api/v1/openapi.json", timeout=30).json()
    paths = set(spec["paths"])
    assert {
        "/api/v1/models",
        "/api/v1/overview",
        "/api/v1/models/{tenant}/{model}",
        "/api/v1/models/{tenant}/{model}/features/{feature}",
        "/api/v1/feed",
        "/api/v1/alerts",
        "/api/v1/alerts/{fingerprint}",
        "/api/v1/alerts/{fingerprint}/silence",
        "/api/v1/alerts/{fingerprint}/acknowledge",
        "/api/v1/silences",
        "/api/v1/silences/{silence_id}",
        "/api/v1/audit",
    } <= paths
    assert not any(p.startswith("/login") or p == "/" for p in paths)
    args = build_parser().parse_args(["console", "--config", str(console.config)])
    assert (args.host, args.port) == ("127.0.0.1", 8080)


def test_tokens_are_printed_once_listed_by_prefix_and_revoked(console: Console, capsys) -> None:
    cfg = str(console.config)
    assert (
        main(
            [
                "tokens",
                "create",
                "--config",
                cfg,
                "--tenant",
                "globex",
                "--role",
                "operator",
                "--name",
                "cli-made",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    token = out[-1]
    assert token.startswith("aiops_") and "shown once" in out[0]
    assert console.store.caller(token).tenant == "globex"
    assert main(["tokens", "list", "--config", cfg]) == 0
    listing = capsys.readouterr().out
    assert "cli-made" in listing and token not in listing and token[:12] in listing
    ident = console.store.caller(token).token_id
    assert main(["tokens", "revoke", "--config", cfg, "--id", str(ident)]) == 0
    assert console.store.caller(token) is None
    assert main(["tokens", "revoke", "--config", cfg, "--id", str(ident)]) == 2
    assert main(["tokens", "create", "--config", cfg, "--role", "viewer"]) == 2
    assert "give --tenant" in capsys.readouterr().err


def test_a_silence_from_the_page_ends_when_it_says(console: Console) -> None:
    s = _session(console, "admin")
    fp = console.fingerprint("globex", "pipeline_failure")
    page = s.get(f"{console.url}/alerts?fingerprint={fp}", timeout=30).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    form = {"csrf": csrf, "until": "2099-01-02T03:04", "comment": "maintenance window"}
    res = s.post(f"{console.url}/alerts/{fp}/silence", data=form, timeout=30)
    assert res.status_code == 200 and "maintenance window" in res.text
    (row,) = console.store.silences("globex").to_dict("records")
    assert row["ends_at"].isoformat() == "2099-01-02T03:04:00+00:00"
    bad = {"csrf": csrf, "until": "not a time", "comment": "x"}
    assert s.post(f"{console.url}/alerts/{fp}/silence", data=bad, timeout=30).status_code == 400
    assert len(console.store.silences("globex")) == 1


def test_a_silence_is_lifted_only_by_an_operator_of_its_tenant(console: Console) -> None:
    fp = console.fingerprint("acme", "performance_decay")
    res = console.post(f"/api/v1/alerts/{fp}/silence", "acme-op", {"hours": 1, "comment": "x"})
    ident = res.json()["id"]
    assert any(
        a["fingerprint"] == fp and a["muted"] for a in console.get("/api/v1/alerts", "acme").json()
    )
    own = console.get(f"/api/v1/alerts/{fp}", "acme").json()
    assert own["muted"] and own["events"] and "deliveries" in own

    def delete(who: str, silence: int) -> requests.Response:
        headers = {"Authorization": f"Bearer {console.tokens[who]}"}
        return requests.delete(
            f"{console.url}/api/v1/silences/{silence}", headers=headers, timeout=30
        )

    assert delete("acme", ident).status_code == 403  # a viewer
    assert delete("globex", ident).status_code == 403  # a viewer of another tenant
    globex_op = console.store.create_token(tenant="globex", role="operator")[1]
    res = requests.delete(
        f"{console.url}/api/v1/silences/{ident}",
        headers={"Authorization": f"Bearer {globex_op}"},
        timeout=30,
    )
    assert res.status_code == 404  # another tenant's silence is not found
    assert delete("acme-op", ident).status_code == 200
    assert not any(
        a["fingerprint"] == fp and a["muted"] for a in console.get("/api/v1/alerts", "acme").json()
    )
    assert delete("acme-op", ident).status_code == 404  # already lifted
    acts = console.store.actions("acme", "churn", action="unsilence")
    assert acts.iloc[-1]["details"]["silence_id"] == ident


def test_the_overview_unmutes_an_alert_when_its_silence_ends(console: Console) -> None:
    """Nothing stored changes when a silence ends, yet the overview's muted count must: the
    cached view holds only until the first silence among its firing alerts ends."""
    alerts = console.get("/api/v1/alerts", "acme").json()
    fp = next(a["fingerprint"] for a in alerts if a["state"] == "firing" and not a["muted"])
    muted = sum(a["muted"] for a in alerts if a["state"] == "firing")
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    body = {"ends_at": ends.isoformat(), "comment": "brief"}
    assert console.post(f"/api/v1/alerts/{fp}/silence", "acme-op", body).status_code == 201
    assert f"({muted + 1} muted)" in console.get("/", "acme").text
    assert console.get("/api/v1/overview", "acme").json()["models"][0]["alerts_muted"] == muted + 1
    time.sleep(max((ends - dt.datetime.now(dt.UTC)).total_seconds(), 0) + 0.2)
    page = console.get("/", "acme").text
    assert f"({muted + 1} muted)" not in page and (muted == 0 or f"({muted} muted)" in page)
    assert console.get("/api/v1/overview", "acme").json()["models"][0]["alerts_muted"] == muted
