"""Run the operator service (REST API; the web UI when built) for one run's store.

Example:
    robolearn serve configs/sim_pick_cube.yaml --set server.port=8080

On the very first start (no accounts in the database) an `admin` account is created and its
one-time password printed once; the first login must replace it (the web UI asks; the API
answers 403 `password_change_required` to everything but /api/auth/password until then).
Add more accounts with `robolearn user add`. The signing secret of bearer tokens comes from
the environment variable named by server.secret_env.
"""

from __future__ import annotations

import argparse
import logging

from robolearn.cli.common import add_config_args, config_from_args

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the operator service (REST API + web UI)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import uvicorn

    # The CLI is the one place the library composes the service (server/ imports robolearn,
    # never the other way round).
    from robolearn.server.app import built_ui, create_app
    from robolearn.server.users import FIRST_ADMIN, ensure_first_admin

    _Server = _make_server_class()  # noqa: N806 - a class
    cfg = config_from_args(args)
    if cfg.server.frontend_dir is None:
        # The UI built into the server package (`make setup` builds it), unless the config
        # names another.
        ui = built_ui()
        if ui is None:
            log.warning("the web UI is not built (server/ui/index.html is missing): serving "
                        "the API only; build it with `make setup` or `cd frontend && npm ci "
                        "&& npm run build`")
        else:
            cfg = cfg.model_copy(update={
                "server": cfg.server.model_copy(update={"frontend_dir": ui})})
    settings = cfg.server
    if not settings.loopback and not settings.cookie_secure:
        log.warning("serving on %s over plain HTTP: passwords and session cookies cross the "
                    "network in clear; put the service behind HTTPS and set "
                    "server.cookie_secure: true", settings.host)
    app = create_app(cfg)
    with app.state.services.store.session() as db:
        password = ensure_first_admin(db)
    if password is not None:
        print(f"first start: created user {FIRST_ADMIN!r} with the one-time password "
              f"{password}\n(it is shown only now and must be changed at the first login)",
              flush=True)
    print(f"operator service for run {cfg.name!r} at {settings.url}", flush=True)
    # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 (its
    # default forwarded_allow_ips), so any local process could pick the address the login
    # limit and the audit log see. The app decides, from server.trusted_proxies.
    server = _Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                    log_level=args.log_level, access_log=False,
                                    proxy_headers=False,
                                    # The live socket takes nothing from browsers: no
                                    # message needs more than a request body may have.
                                    ws_max_size=settings.max_body_bytes))
    server.run()
    return 0


def _make_server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # uvicorn re-raises a captured SIGTERM after its graceful shutdown, so the
            # process would die by the signal; like every robolearn process, a requested
            # stop here is a clean exit (code 0).
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return Server
