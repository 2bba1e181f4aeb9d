"""Credentials of the operator service: password hashes, browser sessions, bearer tokens
and the login rate limit.

Browser sessions live in this process's memory: a restart logs everyone out, which is the
safe direction for a service that can move a robot, and needs no table. Bearer tokens for
scripts are HMAC-signed by the service secret and carry a fingerprint of the user's password
hash, so changing a password (or deactivating the user) revokes every token of that user.
Every clock reading goes through an injected `clock`, so expiry is tested without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch (time.time in production)."""

SESSION_COOKIE = "robolearn_session"
CSRF_COOKIE = "robolearn_csrf"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_PREFIX = "rl1."
# Argon2id with the library defaults (RFC 9106 low-memory profile): ~50 ms per check.
_hasher = PasswordHasher()
# A hash verified when the user does not exist, so timing does not reveal valid names.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Argon2id hash of a password (salted, self-describing)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; a missing or malformed hash never matches."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_fingerprint(password_hash: str) -> str:
    """A short digest of a password hash, embedded in tokens to revoke them on change."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BrowserSession:
    token: str
    user_id: int
    csrf_token: str
    created_at: float
    expires_at: float


class SessionStore:
    """In-memory browser sessions keyed by a random token (thread-safe)."""

    def __init__(self, lifetime_s: float, clock: Clock) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._sessions: dict[str, BrowserSession] = {}
        self._lock = threading.Lock()

    def create(self, user_id: int) -> BrowserSession:
        now = self._clock()
        session = BrowserSession(
            token=secrets.token_urlsafe(32), user_id=user_id,
            csrf_token=secrets.token_urlsafe(32), created_at=now,
            expires_at=now + self.lifetime_s,
        )
        with self._lock:
            self._drop_expired(now)
            self._sessions[session.token] = session
        return session

    def get(self, token: str) -> BrowserSession | None:
        """The live session of `token`; None if unknown or expired (then it is dropped)."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires_at <= now:
                del self._sessions[token]
                return None
            return session

    def revoke(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user (deactivation, password change); returns how many."""
        with self._lock:
            doomed = [t for t, s in self._sessions.items() if s.user_id == user_id]
            for token in doomed:
                del self._sessions[token]
        return len(doomed)

    def _drop_expired(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[token]


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    fingerprint: str
    issued_at: float
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and checks bearer tokens: `rl1.<payload>.<hmac-sha256>`."""

    def __init__(self, secret: bytes, clock: Clock) -> None:
        self._secret = secret
        self._clock = clock

    def issue(self, user_id: int, password_hash: str, lifetime_s: float) -> str:
        now = self._clock()
        payload = json.dumps(
            {"u": user_id, "f": hash_fingerprint(password_hash), "i": now,
             "e": now + lifetime_s, "n": secrets.token_hex(8)},
            separators=(",", ":"),
        ).encode()
        body = TOKEN_PREFIX + _b64(payload)
        return body + "." + _b64(self._sign(body))

    def verify(self, token: str) -> TokenClaims | None:
        """The claims of a genuine, unexpired token; None otherwise (never raises)."""
        if not token.startswith(TOKEN_PREFIX) or token.count(".") != 2:
            return None
        body, _, signature = token.rpartition(".")
        try:
            if not hmac.compare_digest(_unb64(signature), self._sign(body)):
                return None
            data = json.loads(_unb64(body[len(TOKEN_PREFIX):]))
            claims = TokenClaims(user_id=int(data["u"]), fingerprint=str(data["f"]),
                                 issued_at=float(data["i"]), expires_at=float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if claims.expires_at <= self._clock():
            return None
        return claims

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).digest()


class LoginLimiter:
    """Sliding-window count of failed logins per key (client address, user name)."""

    def __init__(self, max_failures: int, window_s: float, clock: Clock) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, keys: Iterable[str]) -> float | None:
        """Seconds until a login under these keys is allowed again; None: allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._prune(key, now)
                if len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window_s - now)
        return wait if wait > 0 else None

    def record_failure(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._prune(key, now)
                times.append(now)
                self._failures[key] = times

    def _prune(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            # Keep the map from growing with every address that ever failed once.
            self._failures.pop(key, None)
        return times
