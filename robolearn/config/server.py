"""Settings of the operator service (`robolearn serve`, started by `robolearn up`).

The data directory and database come from the run config itself, so the service always
reads the store its run writes. The signing secret of bearer tokens is never written in a
config file: it comes from the environment variable named by `secret_env`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from robolearn.errors import ConfigError

log = logging.getLogger(__name__)

# Values people paste from examples; refused outside development mode.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development",
                                 "placeholder", "xxx"})
MIN_SECRET_CHARS = 32


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="`robolearn up` starts the operator service with the run."
    )
    host: str = Field(
        "127.0.0.1",
        description="Address the HTTP service binds. A non-loopback address exposes the robot's "
        "controls to that network: put it behind HTTPS and set cookie_secure.",
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP service.")
    session_lifetime_s: float = Field(
        12 * 3600.0, gt=0, le=30 * 86400,
        description="A browser login expires this long after it was made, s. Longer leaves a "
        "forgotten logged-in lab PC able to move the robot for longer.",
    )
    token_lifetime_s: float = Field(
        30 * 86400.0, gt=0, le=366 * 86400,
        description="Default lifetime of a bearer token for scripts, s.",
    )
    login_max_failures: int = Field(
        5, ge=1, le=1000,
        description="Failed logins allowed per client address and per user name within "
        "login_window_s before further attempts get 429.",
    )
    login_window_s: float = Field(
        60.0, gt=0, le=86400, description="Sliding window of the login rate limit, s."
    )
    preference_lease_s: float = Field(
        120.0, gt=0, le=3600,
        description="How long a preference query stays reserved for the operator who got it, "
        "s. Too short: the pair goes to someone else while the first still watches it.",
    )
    cookie_secure: bool = Field(
        False,
        description="Mark cookies Secure (sent over HTTPS only). Must be true behind HTTPS; "
        "true over plain HTTP makes login impossible.",
    )
    secret_env: str = Field(
        "ROBOLEARN_SERVER_SECRET",
        description="Environment variable holding the secret that signs bearer tokens (at "
        f"least {MIN_SECRET_CHARS} characters). Unset: a random secret per process, so tokens "
        "stop working when the service restarts.",
    )
    development: bool = Field(
        False, description="Accept a placeholder secret (local development only)."
    )
    frontend_dir: Path | None = Field(
        None, description="Built web UI served at /; None: `robolearn serve` serves the one "
        "built into the server package (server/ui), or the API only when none is built."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=1024**3,
        description="Largest request body the service reads, bytes; larger ones get 413 before "
        "they are buffered. The service takes JSON only (run choices, labels, teleop, "
        "calibration edits: a few KiB), no file uploads, so 1 MiB leaves ample room while "
        "keeping a flood of big bodies from filling memory.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "header is believed. Empty: the header is ignored and the TCP peer is the client, so "
        "nobody can pick the address the login rate limit and the audit log see. Behind a "
        "proxy, list exactly its address, e.g. ['127.0.0.1'].",
    )
    allowed_configs: tuple[Path, ...] = Field(
        (),
        description="Run configs (YAML files, or directories whose *.yaml files count) an "
        "operator may start from the service. Operators pick one by name and may override only "
        "a few safe fields (name, episodes, policy kind, task text); sockets, security, paths "
        "and the service itself come from the file the admin chose. Relative paths are "
        "relative to the service's working directory. Empty: no run can be created from the "
        "service (start runs with `robolearn up`).",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or CIDR "
                                 "network, e.g. '127.0.0.1' or '10.0.0.0/24'") from exc
        return value

    @property
    def url(self) -> str:
        """The address operators open in a browser."""
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def token_secret(self) -> bytes:
        """The bearer-token signing secret from the environment.

        Raises:
            ConfigError: the secret is a placeholder or too short (outside development).
        """
        value = os.environ.get(self.secret_env)
        if value is None:
            log.warning("%s is not set: bearer tokens are signed with a random key and stop "
                        "working when the service restarts", self.secret_env)
            return secrets.token_bytes(32)
        if not self.development and (
            value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_CHARS
        ):
            raise ConfigError(
                f"server: {self.secret_env} looks like a placeholder or is shorter than "
                f"{MIN_SECRET_CHARS} characters; set it to e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return value.encode()
