"""The AI-Ops console: a FastAPI application over the monitoring store.

Pages (server-side Jinja2 templates; charts drawn by Plotly.js, served from the installed
`plotly` package, so nothing is fetched from a CDN) and a JSON API under `/api/v1` (OpenAPI at
`/api/v1/openapi.json`) serve the same data (`views.console.data`).

Security model:
- every request but the login page and static files needs a live token: `Authorization:
  Bearer <token>` (API clients) or the HttpOnly, SameSite=Strict cookie the login page sets
  (browsers). The token's tenant is the scope every store query is filtered by; an admin reads
  every tenant. Another tenant's model or alert is "not found" (404), not "forbidden".
- viewers read; operators and admins also silence, acknowledge and lift silences (403 for a
  viewer). A mutation authenticated by the cookie must carry the CSRF token of the page it was
  made from (a form field or `X-CSRF-Token`) and, when the browser sends one, an Origin of this
  server: a cross-site page cannot make one.
- every request, answered or refused, is appended to the data-access audit (`access_log`) and
  every mutation to the audit trail of actions as well; tokens are never written anywhere (no
  token is accepted in a URL, and the query strings recorded drop any `token` parameter).
- templates escape every value (Jinja2 autoescape); data for the charts is embedded as JSON
  that cannot close its script element, and the Content-Security-Policy runs only this
  server's scripts.
"""

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import anyio
import plotly
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from aiops_pipelines.core.config import AppConfig, load_config
from aiops_pipelines.io.access import Caller, access_row
from aiops_pipelines.io.store import MonitoringStore
from aiops_pipelines.views.console import data

HERE = Path(__file__).parent
COOKIE = "aiops_console"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
REFRESH_SECONDS = 15
WORKER_THREADS = 4
_SECRET_QUERY = {"token", "access_token", "api_key"}


class SilenceRequest(BaseModel):
    """Mute an alert until `ends_at` (UTC), or for `hours` from now."""

    ends_at: dt.datetime | None = Field(None, description="end of the silence, ISO 8601 with zone")
    hours: float | None = Field(None, gt=0, le=24 * 90, description="or: how long, from now")
    comment: str = Field(..., min_length=1, max_length=2000, description="why (shown to all)")


class AckRequest(BaseModel):
    """Acknowledge an alert's current episode: no repeat notifications for it."""

    comment: str = Field("", max_length=2000)


class Cache:
    """What the overview builds, per (scope, day), rebuilt only when the store changed
    (`change_marker`, looked at most every `min_age` seconds): a burst of clients costs one
    build. Silences and acknowledgements are part of the marker."""

    def __init__(self, store: MonitoringStore, min_age: float = 1.0) -> None:
        self.store, self.min_age = store, min_age
        # the benchmark's old path: every request builds its view
        self.off = os.environ.get("AIOPS_CONSOLE_NO_CACHE") == "1"
        self._lock = threading.Lock()
        self._mark: Any = None
        self._checked = -1e9
        self._built: dict[tuple[Any, ...], Any] = {}
        self._until: dict[tuple[Any, ...], float] = {}  # wall-clock end of a built value
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    def _current(self, fresh: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not fresh and now - self._checked < self.min_age:
                return
            mark = self.store.change_marker()
            self._checked = time.monotonic()
            if mark != self._mark:
                self._mark, self._built, self._until = mark, {}, {}

    def _cached(self, key: tuple[Any, ...]) -> Any | None:
        """The built value while it holds (call with the lock held)."""
        if key in self._until and time.time() >= self._until[key]:
            self._built.pop(key, None)
            self._until.pop(key, None)
        return self._built.get(key)

    def peek(self, key: tuple[Any, ...]) -> Any | None:
        """The cached value when it is known current without asking the store (checked less
        than `min_age` ago); None otherwise. Never waits: safe on the event loop."""
        if self.off or time.monotonic() - self._checked >= self.min_age:
            return None
        with self._lock:
            return self._cached(key)

    def get(
        self,
        key: tuple[Any, ...],
        build: Callable[[], Any],
        *,
        fresh: bool = False,
        until: Callable[[Any], dt.datetime | None] | None = None,
    ) -> Any:
        """The value for `key`, built when the store changed. `fresh` asks the store now instead
        of trusting a look less than `min_age` old: a page a person opens (right after muting
        an alert, possibly through another worker) must show it; polling need not. `until`:
        when the built value stops holding with nothing stored changing (a silence that ends),
        from the value; it is rebuilt then."""
        if self.off:
            return build()
        self._current(fresh)
        with self._lock:
            found = self._cached(key)
            if found is not None:
                return found
            gate = self._building.setdefault(key, threading.Lock())
        with gate:  # one build per key at a time; the others wait for it
            with self._lock:
                found = self._cached(key)
                if found is not None:
                    return found
            value = build()
            end = until(value) if until is not None else None
            with self._lock:
                self._built[key] = value
                if end is not None:
                    self._until[key] = end.timestamp()
            return value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


CONFIG_ENV = "AIOPS_CONSOLE_CONFIG"
SECRET_ENV = "AIOPS_CONSOLE_SECRET"


def app_from_env() -> FastAPI:
    """The app of one of `aiops console --workers N`'s processes: the config path and the CSRF
    key (shared by the workers, so a form served by one is accepted by another) come from the
    environment the command set."""
    return create_app(os.environ[CONFIG_ENV], secret=bytes.fromhex(os.environ[SECRET_ENV]))


def create_app(config: AppConfig | str | Path, *, secret: bytes | None = None) -> FastAPI:
    """The console for `config`'s store (a config object or the path of its YAML file)."""
    cfg = config if isinstance(config, AppConfig) else load_config(config)
    store = MonitoringStore(cfg.storage.store_url)
    store.ensure_schema()
    cache = Cache(store)
    csrf_key = secret or secrets.token_bytes(32)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["refresh_seconds"] = REFRESH_SECONDS

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the store's work is mostly Python under one lock (the GIL): a few threads serve a
        # crowd of clients faster and more evenly than anyio's default 40
        threads = int(os.environ.get("AIOPS_CONSOLE_THREADS", str(WORKER_THREADS)))
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield
        store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="aiops console API",
        version="1",
        description="The AI-Ops console's data: `Authorization: Bearer <token>` "
        "(`aiops tokens create`). Every response is limited to the token's tenant.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI would load its scripts from a CDN
        redoc_url=None,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # -- who is calling ------------------------------------------------------------------

    def token_of(request: Request) -> tuple[str | None, bool]:
        """(the token, whether it came from the cookie)."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        cookie = request.cookies.get(COOKIE)
        return (cookie, True) if cookie else (None, False)

    def csrf_for(token: str) -> str:
        digest = hashlib.sha256(token.encode()).digest()
        return hmac.new(csrf_key, digest, hashlib.sha256).hexdigest()

    def caller(request: Request) -> Caller:
        token, from_cookie = token_of(request)
        who = store.caller(token) if token else None
        if who is None:
            request.state.caller = None
            if request.url.path.startswith("/api/"):
                raise HTTPException(
                    401,
                    "a live token is needed: Authorization: Bearer <token>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            raise _ToLogin()
        request.state.caller = who
        request.state.from_cookie = from_cookie
        request.state.csrf = csrf_for(token) if from_cookie else None
        return who

    Who = Annotated[Caller, Depends(caller)]

    async def mutation_allowed(request: Request, who: Caller) -> dict[str, str]:
        """The form or JSON body of a mutation, once the caller may make it."""
        if not who.can_mutate:
            raise HTTPException(403, f"a {who.role} token cannot change anything")
        body: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if getattr(request.state, "from_cookie", False):
            origin = request.headers.get("origin")
            if origin is not None and origin != str(request.base_url).rstrip("/"):
                raise HTTPException(403, "cross-site request refused")
            sent = body.get("csrf") or request.headers.get("x-csrf-token") or ""
            if not hmac.compare_digest(sent, request.state.csrf or ""):
                raise HTTPException(403, "missing or stale CSRF token: reload the page")
        return body

    app.add_middleware(AccessAudit, writer=AuditWriter(store))

    @app.exception_handler(_ToLogin)
    async def to_login(request: Request, exc: _ToLogin) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(data.NotFound)
    async def not_found(request: Request, exc: data.NotFound) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return _page(request, "error.html", {"message": str(exc)}, status=404)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return _page(request, "error.html", {"message": str(exc)}, status=400)

    def _page(request: Request, name: str, context: dict[str, Any], status: int = 200):
        who = getattr(request.state, "caller", None)
        return templates.TemplateResponse(
            request,
            name,
            {"caller": who, "csrf": getattr(request.state, "csrf", None), **context},
            status_code=status,
        )

    def _day(day: str | None) -> str | None:
        return None if day in (None, "") else dt.date.fromisoformat(day).isoformat()

    def _overview(who: Caller, day: str | None, *, fresh: bool = False) -> dict[str, Any]:
        return cache.get(
            ("overview", who.scope, day),
            lambda: data.overview(store, cfg, who.scope, day=_day(day), now=_now()),
            fresh=fresh,
            until=data.overview_valid_until,
        )

    def _overview_json(who: Caller, day: str | None) -> bytes:
        # what every open console asks for every few seconds: encoded once per change
        return cache.get(
            ("overview.json", who.scope, day),
            lambda: json.dumps(_overview(who, day), separators=(",", ":")).encode(),
            until=lambda _: data.overview_valid_until(_overview(who, day)),
        )

    # -- API ----------------------------------------------------------------------------

    @app.get("/api/v1/models", tags=["models"])
    def api_models(who: Who) -> list[dict[str, Any]]:
        """The caller's models (every tenant's for an admin)."""
        return data.models(store, cfg, who.scope)

    @app.get("/api/v1/overview", tags=["overview"], response_class=JSONResponse)
    async def api_overview(who: Who, day: str | None = None) -> Response:
        """Health per tenant and model on `day` (default: the latest with results)."""
        # what every open console polls: served on the event loop when the cache is current
        body = cache.peek(("overview.json", who.scope, day))
        if body is None:
            body = await run_in_threadpool(_overview_json, who, day)
        return Response(body, media_type="application/json")

    @app.get("/api/v1/models/{tenant}/{model}", tags=["models"])
    def api_model(
        request: Request,
        who: Who,
        tenant: str,
        model: str,
        day: str | None = None,
        days: Annotated[int, Query(ge=1, le=data.MAX_WINDOW_DAYS)] = 30,
    ) -> dict[str, Any]:
        """One model: health, drift (feature x day), performance, ops, canary, alerts, actions."""
        request.state.target = f"{tenant}.{model}"
        return data.model_detail(
            store, cfg, who.scope, tenant, model, day=_day(day), days=days, now=_now()
        )

    @app.get("/api/v1/models/{tenant}/{model}/features/{feature}", tags=["models"])
    def api_feature(
        request: Request, who: Who, tenant: str, model: str, feature: str, day: str
    ) -> dict[str, Any]:
        """A feature's distribution, reference vs `day`, on the reference's bins."""
        request.state.target = f"{tenant}.{model}:{feature}"
        return data.feature_distribution(
            store, cfg, who.scope, tenant, model, feature, day=str(_day(day))
        )

    @app.get("/api/v1/feed", tags=["feed"])
    def api_feed(
        who: Who,
        day: str | None = None,
        days: Annotated[int, Query(ge=1, le=data.MAX_WINDOW_DAYS)] = 7,
        tenant: str | None = None,
        model: str | None = None,
        signal: str | None = None,
        severity: Annotated[str | None, Query(pattern="^(info|warning|critical)$")] = None,
    ) -> dict[str, Any]:
        """The anomaly feed: findings, actions and alert changes, newest first."""
        return data.feed_rows(
            store,
            who.scope,
            day=_day(day),
            days=days,
            tenant=tenant or None,
            model=model or None,
            signal=signal or None,
            severity=severity or None,
        )

    @app.get("/api/v1/alerts", tags=["alerts"])
    def api_alerts(who: Who, state: str | None = None) -> list[dict[str, Any]]:
        """Alert states with their silence and acknowledgement."""
        rows = data.alerts(store, who.scope, now=_now())
        return [a for a in rows if state is None or a["state"] == state]

    @app.get("/api/v1/alerts/{fingerprint}", tags=["alerts"])
    def api_alert(request: Request, who: Who, fingerprint: str) -> dict[str, Any]:
        """One alert with its notifications and their deliveries."""
        request.state.target = fingerprint
        return data.alert(store, who.scope, fingerprint, now=_now())

    def _silence(who: Caller, fingerprint: str, req: SilenceRequest) -> dict[str, Any]:
        a = data.alert(store, who.scope, fingerprint, now=_now())
        if req.ends_at is None and req.hours is None:
            raise ValueError("give ends_at (ISO 8601 with zone) or hours")
        ends = req.ends_at or _now() + dt.timedelta(hours=float(req.hours or 0))
        if ends.tzinfo is None:
            raise ValueError(f"ends_at {ends.isoformat()} has no time zone: add Z or +00:00")
        ident = store.add_silence(a, ends_at=ends, comment=req.comment, created_by=who.actor)
        store.record_action(
            who.actor,
            "silence",
            a["tenant"],
            a["model"],
            details={
                "silence_id": ident,
                "fingerprint": fingerprint,
                "signal": a["signal"],
                "column": a["column"],
                "ends_at": ends.isoformat(),
                "reason": req.comment,
            },
        )
        return {"id": ident, "fingerprint": fingerprint, "ends_at": ends.isoformat()}

    def _ack(who: Caller, fingerprint: str, req: AckRequest) -> dict[str, Any]:
        a = data.alert(store, who.scope, fingerprint, now=_now())
        ident, new = store.acknowledge(a, comment=req.comment, created_by=who.actor)
        if new:
            store.record_action(
                who.actor,
                "acknowledge",
                a["tenant"],
                a["model"],
                details={
                    "fingerprint": fingerprint,
                    "episode_start": a["first_seen"],
                    "signal": a["signal"],
                    "reason": req.comment,
                },
            )
        return {"id": ident, "fingerprint": fingerprint, "new": new}

    def _unsilence(who: Caller, silence_id: int) -> dict[str, Any]:
        rows = data.records(store.silences(who.scope))
        found = [s for s in rows if s["id"] == silence_id]
        if not found or not store.expire_silence(silence_id, by=who.actor, tenant=who.scope):
            raise data.NotFound(f"no active silence {silence_id}")
        s = found[0]
        store.record_action(
            who.actor, "unsilence", s["tenant"], s["model"], details={"silence_id": silence_id}
        )
        return {"id": silence_id, "expired": True}

    @app.post("/api/v1/alerts/{fingerprint}/silence", tags=["alerts"], status_code=201)
    async def api_silence(
        request: Request, who: Who, fingerprint: str, body: SilenceRequest
    ) -> dict[str, Any]:
        """Silence the alert (operator or admin)."""
        request.state.target = fingerprint
        await mutation_allowed(request, who)
        return _silence(who, fingerprint, body)

    @app.post("/api/v1/alerts/{fingerprint}/acknowledge", tags=["alerts"], status_code=201)
    async def api_ack(
        request: Request, who: Who, fingerprint: str, body: AckRequest
    ) -> dict[str, Any]:
        """Acknowledge the alert's current episode (operator or admin)."""
        request.state.target = fingerprint
        await mutation_allowed(request, who)
        return _ack(who, fingerprint, body)

    @app.get("/api/v1/silences", tags=["alerts"])
    def api_silences(who: Who, active: bool = False) -> list[dict[str, Any]]:
        """Console silences, newest first (`active`: only those in force now)."""
        return data.records(store.silences(who.scope, active_at=_now() if active else None))

    @app.delete("/api/v1/silences/{silence_id}", tags=["alerts"])
    async def api_unsilence(request: Request, who: Who, silence_id: int) -> dict[str, Any]:
        """Lift a silence now (operator or admin)."""
        request.state.target = f"silence:{silence_id}"
        await mutation_allowed(request, who)
        return _unsilence(who, silence_id)

    @app.get("/api/v1/audit", tags=["audit"])
    def api_audit(who: Who, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
        """The data-access audit and the actions (admins only)."""
        if not who.is_admin:
            raise HTTPException(403, "the audit trail is for admins")
        return {
            "access": data.records(store.access_log(limit=limit)),
            "actions": data.records(store.actions()[::-1].head(limit)),
        }

    # -- pages --------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Response:
        return _page(request, "login.html", {"error": None})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != str(request.base_url).rstrip("/"):
            raise HTTPException(403, "cross-site request refused")
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        token = form.get("token", "").strip()
        who = store.caller(token) if token else None
        if who is None:
            return _page(request, "login.html", {"error": "unknown or revoked token"}, 401)
        request.state.caller = who
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, who: Who) -> Response:
        sent = dict(parse_qsl((await request.body()).decode("utf-8", "replace"))).get("csrf", "")
        if request.state.csrf and not hmac.compare_digest(sent, request.state.csrf):
            raise HTTPException(403, "missing or stale CSRF token: reload the page")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(request: Request, who: Who, day: str | None = None) -> Response:
        return _page(
            request, "overview.html", {"view": _overview(who, day, fresh=True), "day": day or ""}
        )

    @app.get("/models/{tenant}/{model}", response_class=HTMLResponse, include_in_schema=False)
    def model_page(
        request: Request,
        who: Who,
        tenant: str,
        model: str,
        day: str | None = None,
        days: Annotated[int, Query(ge=1, le=data.MAX_WINDOW_DAYS)] = 30,
    ) -> Response:
        request.state.target = f"{tenant}.{model}"
        view = data.model_detail(
            store, cfg, who.scope, tenant, model, day=_day(day), days=days, now=_now()
        )
        return _page(request, "model.html", {"view": view, "days": days})

    @app.get("/feed", response_class=HTMLResponse, include_in_schema=False)
    def feed_page(
        request: Request,
        who: Who,
        day: str | None = None,
        days: Annotated[int, Query(ge=1, le=data.MAX_WINDOW_DAYS)] = 7,
        tenant: str | None = None,
        model: str | None = None,
        signal: str | None = None,
        severity: str | None = None,
    ) -> Response:
        severity = severity if severity in data.SEVERITIES else None
        view = data.feed_rows(
            store,
            who.scope,
            day=_day(day),
            days=days,
            tenant=tenant or None,
            model=model or None,
            signal=signal or None,
            severity=severity,
        )
        filters = {
            "tenant": tenant or "",
            "model": model or "",
            "signal": signal or "",
            "severity": severity or "",
            "days": days,
            "day": day or "",
        }
        return _page(
            request,
            "feed.html",
            {"view": view, "filters": filters, "models": data.models(store, cfg, who.scope)},
        )

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(request: Request, who: Who, fingerprint: str | None = None) -> Response:
        rows = data.alerts(store, who.scope, now=_now())
        detail = data.alert(store, who.scope, fingerprint, now=_now()) if fingerprint else None
        silences = data.records(store.silences(who.scope, active_at=_now()))
        return _page(
            request,
            "alerts.html",
            {"alerts": rows, "detail": detail, "silences": silences},
        )

    @app.post("/alerts/{fingerprint}/silence", include_in_schema=False)
    async def silence_form(request: Request, who: Who, fingerprint: str) -> Response:
        request.state.target = fingerprint
        form = await mutation_allowed(request, who)
        until = form.get("until", "").strip()  # a datetime-local field, read as UTC
        req = SilenceRequest(
            ends_at=dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC) if until else None,
            hours=None if until else float(form.get("hours") or 0) or None,
            comment=form.get("comment", "").strip() or "-",
        )
        _silence(who, fingerprint, req)
        return RedirectResponse(f"/alerts?fingerprint={fingerprint}", status_code=303)

    @app.post("/alerts/{fingerprint}/acknowledge", include_in_schema=False)
    async def ack_form(request: Request, who: Who, fingerprint: str) -> Response:
        request.state.target = fingerprint
        form = await mutation_allowed(request, who)
        _ack(who, fingerprint, AckRequest(comment=form.get("comment", "").strip()))
        return RedirectResponse(f"/alerts?fingerprint={fingerprint}", status_code=303)

    @app.post("/silences/{silence_id}/expire", include_in_schema=False)
    async def unsilence_form(request: Request, who: Who, silence_id: int) -> Response:
        request.state.target = f"silence:{silence_id}"
        await mutation_allowed(request, who)
        _unsilence(who, silence_id)
        return RedirectResponse("/alerts", status_code=303)

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request, who: Who) -> Response:
        if not who.is_admin:
            raise HTTPException(403, "the audit trail is for admins")
        access = data.records(store.access_log(limit=300))
        actions = data.records(store.actions()[::-1].head(300))
        return _page(request, "audit.html", {"access": access, "actions": actions})

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            PLOTLY_JS,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return app


class _ToLogin(Exception):
    """A page requested without a live token: go to the login page."""


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
]


class AuditWriter:
    """Writes the data-access audit by group commit: each request hands its row over and waits
    until it is committed, and the rows of the requests waiting at the same moment go in one
    transaction. One writer per process never queues behind itself on SQLite's write lock
    (whose busy handler sleeps in steps), and a crowd of requests costs a few commits."""

    MAX_BATCH = 500

    def __init__(self, store: MonitoringStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[tuple[dict, Callable[[BaseException | None], None]]]
        self._queue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="access-audit", daemon=True).start()

    async def write(self, row: dict) -> None:
        """Commit `row`; returns once it is in the store (raises what the commit raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish(error: BaseException | None) -> None:
            def settle() -> None:
                if done.done():
                    return
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

            loop.call_soon_threadsafe(settle)

        self._queue.put((row, finish))
        await done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            error: BaseException | None = None
            try:
                self.store.record_accesses([row for row, _ in batch])
            except Exception as exc:  # every waiting request fails with it: nothing unaudited
                error = exc
            for _, finish in batch:
                finish(error)


class AccessAudit:
    """ASGI middleware: every request but static files is appended to the data-access audit
    before its answer starts (who: the caller the endpoint's dependency found, None when
    refused; what: method, path, query without secrets, the target the endpoint named; the
    status), and every answer gets the security headers. Written as plain ASGI, not as
    Starlette's `BaseHTTPMiddleware`, which costs a task and a stream per request."""

    def __init__(self, app: Any, writer: AuditWriter) -> None:
        self.app, self.writer = app, writer

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        audited = not path.startswith(("/static/", "/vendor/"))
        state = scope.setdefault("state", {})
        started = False

        async def answer(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                if audited:
                    await self.writer.write(self.row(scope, state, message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except Exception:
            if audited and not started:
                await self.writer.write(self.row(scope, state, 500))
            raise

    @staticmethod
    def row(scope: dict, state: dict, status: int) -> dict:
        raw = scope.get("query_string", b"").decode("latin-1")
        query = urlencode([(k, v) for k, v in parse_qsl(raw) if k.lower() not in _SECRET_QUERY])
        return access_row(
            state.get("caller"), scope["method"], scope["path"], query, status, state.get("target")
        )
