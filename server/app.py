"""The operator service: `create_app(config)` builds the FastAPI app for one run's store.

How to add a router
-------------------
1. Write `server/routers/<resource>.py` with ``router = APIRouter(prefix="/api/<resource>",
   tags=["<resource>"])``; handlers take their dependencies from `server/deps.py`
   (`DbSession`, `CurrentUser` / `CurrentOperator` / `CurrentAdmin`, `RunOr404`, ...) and
   bodies from `server/schemas.py`. A state-changing handler depends on CurrentOperator (or
   CurrentAdmin) and calls `audit(db, user, "<resource>.<verb>", target)` before committing.
2. Add the module to `_routers()` below. Operation ids are generated as `<tag>-<handler>`,
   so the handler's function name is part of the API: do not rename it casually.
3. tests/server/test_roles.py walks every route: a mutating route without an auth
   dependency fails it.

Nothing is built at import time: `robolearn serve` calls `create_app(load_config(...))`;
tests call it with a config pointing at a temporary data directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError

from robolearn.config import RunConfig
from robolearn.errors import RobolearnError, StoreError, UserError
from robolearn.processes import RUN_FILES_DIRNAME
from robolearn.runlock import RobotBusy, remove_stale_configs
from robolearn.server.auth import Clock, LoginLimiter, SessionStore, TokenSigner
from robolearn.server.deps import PasswordChangeRequired
from robolearn.server.middleware import BodySizeLimit, SecurityHeaders, TrustedProxyHeaders
from robolearn.server.preferences import PreferenceLoopThread
from robolearn.server.services import Services
from robolearn.store import Store
from robolearn.store.runs import reap_dead_runs

log = logging.getLogger(__name__)

API_VERSION = "1"
# The built web UI inside this package (frontend/vite.config.ts writes it there).
UI_DIRNAME = "ui"
_NO_UI_HTML = (
    "<!doctype html><title>robolearn: no web UI</title>"
    "<h1>This robolearn service serves no web UI</h1>"
    f"<p>None is built into the server package (server/{UI_DIRNAME}/index.html is missing) "
    "and the run config names no <code>server.frontend_dir</code>. Build it with "
    "<code>make setup</code> (or <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run "
    "build</code>) and restart <code>robolearn serve</code>. The API answers under "
    "<code>/api</code>.</p>"
)


def _routers() -> list[APIRouter]:
    from robolearn.server import live
    from robolearn.server.routers import (
        audit_log,
        auth,
        calibrations,
        control,
        episodes,
        fleet,
        labels,
        metrics,
        operator_requests,
        preferences,
        replays,
        reward_models,
        runs,
        users,
    )

    return [
        auth.router, users.router, runs.router, episodes.router, labels.router,
        preferences.router, reward_models.router, metrics.router, audit_log.router,
        control.router, live.router, replays.router, operator_requests.router,
        calibrations.router, fleet.router,
    ]


def operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(
    config: RunConfig,
    *,
    clock: Clock = time.time,
    token_secret: bytes | None = None,
) -> FastAPI:
    """Build the app: opens (and migrates) the run's store; closes it on shutdown.

    Args:
        config: the run config; its data_dir/database_url name the store and `server` the
            settings.
        clock: seconds since the epoch; tests pass a controllable clock to expire sessions.
        token_secret: bearer-token signing key; None reads it from the environment
            (`server.secret_env`).

    Raises:
        ConfigError: a placeholder token secret outside development.
        StoreError: the store cannot be opened or migrated.
    """
    settings = config.server
    secret = token_secret if token_secret is not None else settings.token_secret()
    store = Store.open(config.data_dir, config.database_url)
    _recover_runs(store, config)
    services = Services(
        config=config,
        store=store,
        sessions=SessionStore(settings.session_lifetime_s, clock),
        tokens=TokenSigner(secret, clock),
        limiter=LoginLimiter(settings.login_max_failures, settings.login_window_s, clock),
        clock=clock,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Queries and retraining for the training run, off the request threads.
        prefs = PreferenceLoopThread(store, config.rewards.preference.loop_interval_s)
        prefs.start()
        try:
            yield
        finally:
            prefs.stop()
            services.close()

    app = FastAPI(
        title="robolearn operator service",
        version=API_VERSION,
        description="Runs, episodes, labels, preferences and reward models of one robolearn "
        "store. Log in at /api/auth/login (cookie + CSRF header) or send a bearer token.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.services = services
    for router in _routers():
        app.include_router(router)
    _add_error_handlers(app)
    # The last added runs first: the client's address is settled before anything reads it,
    # and every answer, a 413 included, carries the security headers.
    app.add_middleware(TrustedProxyHeaders, trusted=settings.trusted_proxies)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    if settings.frontend_dir is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    else:
        # A plain route, not an API one: it is no part of the API and needs no login.
        app.add_route("/", _no_ui_page, include_in_schema=False)
    return app


def built_ui() -> Path | None:
    """The web UI built into this package, or None when it has not been built.

    `npm run build` in frontend/ writes it to server/ui/, which a wheel carries as package
    data, so an installed service finds it exactly where a checkout does.
    """
    ui = resources.files("robolearn.server").joinpath(UI_DIRNAME)
    # StaticFiles serves a directory: a package imported from a zip has none to serve.
    if isinstance(ui, Path) and (ui / "index.html").is_file():
        return ui
    return None


async def _no_ui_page(_request: Request) -> HTMLResponse:
    return HTMLResponse(_NO_UI_HTML, status_code=status.HTTP_404_NOT_FOUND)


def _recover_runs(store: Store, config: RunConfig) -> None:
    """Mark "died" the runs whose starting process is gone (see robolearn.store.runs) and
    remove the resolved configs they left. A store that cannot be written (full disk) must
    not keep the service (and its e-stop) from starting: that is logged instead."""
    try:
        reap_dead_runs(store)
        remove_stale_configs(config.data_dir / RUN_FILES_DIRNAME)
    except (StoreError, SQLAlchemyError, OSError) as exc:
        log.error("could not mark dead runs at start (the store is not writable?): %s", exc)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON `{"detail": "..."}` with a message that says what to do."""

    @app.exception_handler(PasswordChangeRequired)
    async def _password_change(_request: Request, exc: PasswordChangeRequired) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "code": exc.code},
                            status_code=exc.status_code)

    @app.exception_handler(RobotBusy)
    async def _robot_busy(_request: Request, exc: RobotBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(UserError)
    async def _user_error(_request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(RobolearnError)
    async def _robolearn_error(_request: Request, exc: RobolearnError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); the service log has the "
                       "traceback"},
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
