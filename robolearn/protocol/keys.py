"""A run's CURVE keys: one key pair per process identity, kept as zmq certificate files.

A key directory holds `<identity>.key` (public half) and `<identity>.key_secret` (both
halves, mode 0600) for every process of a run: `driver`, `actor`, `learner`, `service`,
`operator` (the local CLI), and `camera-<name>` for each camera served by its own process.
The directory itself is 0700. A process loads its own secret and the public keys of the
servers it connects to; a server admits exactly the public keys in the directory whose
identities may use that socket (see `robolearn.config.sockets`).

Another host gets only what its processes need: `KeyRing.export()` copies the public keys
and the chosen identities' secrets into a new directory (`robolearn keys export`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import zmq.auth

from robolearn.errors import ConfigError

log = logging.getLogger(__name__)

_IDENTITY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def check_identity(name: str) -> str:
    """Return `name` if it can name a key (lowercase, digits, - and _), else raise."""
    if not _IDENTITY.match(name):
        raise ConfigError(f"key identity {name!r}: use lowercase letters, digits, '-' and '_' "
                          "(at most 64 characters, starting with a letter)")
    return name


class KeyRing:
    """The key files of one run in `directory`.

    Public keys are read once; secrets are read on demand (a host may lack most of them).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._public: dict[str, str] = {}
        self._by_key: dict[str, str] = {}
        if not self.directory.is_dir():
            raise ConfigError(
                f"no run keys in {self.directory}: `robolearn up` creates them; for processes "
                "started by hand run `robolearn keys create CONFIG` (on another host, copy "
                "the output of `robolearn keys export CONFIG --identity NAME` there)")
        for path in sorted(self.directory.glob("*.key")):
            name = path.stem
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"key file {path}: not a zmq certificate ({e}); recreate "
                                  "the run's keys with `robolearn keys create CONFIG --force`"
                                  ) from e
            self._public[name] = public.decode("ascii")
            self._by_key[self._public[name]] = name

    @classmethod
    def create(cls, directory: Path, identities: list[str], *, force: bool = False) -> KeyRing:
        """Write a key pair for each identity that has none (all of them with `force`).

        Returns:
            The ring over `directory`, including identities that existed before.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        for name in identities:
            check_identity(name)
            public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
            if public.exists() and secret.exists() and not force:
                continue
            # Write under a temporary name, then rename: a reader never sees half a key.
            tmp_dir = directory / f".new-{name}-{os.getpid()}"
            tmp_dir.mkdir(mode=0o700)
            try:
                old_umask = os.umask(0o077)
                try:
                    pub_file, sec_file = zmq.auth.create_certificates(tmp_dir, name)
                finally:
                    os.umask(old_umask)
                os.chmod(sec_file, 0o600)
                os.replace(sec_file, secret)
                os.replace(pub_file, public)
            finally:
                for leftover in tmp_dir.iterdir():
                    leftover.unlink()
                tmp_dir.rmdir()
            log.info("created CURVE key pair %r in %s", name, directory)
        return cls(directory)

    def identities(self) -> list[str]:
        """Every identity with a public key here."""
        return sorted(self._public)

    def public(self, name: str) -> str:
        """The z85 public key of `name`."""
        try:
            return self._public[name]
        except KeyError:
            raise ConfigError(
                f"no public key for {name!r} in {self.directory} (have {self.identities()}); "
                "add it with `robolearn keys create CONFIG`") from None

    def secret(self, name: str) -> str:
        """The z85 secret key of `name`, refused when the file is readable by others."""
        path = self.directory / f"{name}.key_secret"
        try:
            mode = path.stat().st_mode
            _, secret = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"this host has no secret key for {name!r} ({path}: {e}); a process runs "
                "as one identity and needs its own `.key_secret` file (`robolearn keys "
                f"export CONFIG --identity {name}` on the host that has it)") from e
        if mode & 0o077:
            raise ConfigError(f"{path} is readable by other users (mode {mode & 0o777:o}); "
                              f"run `chmod 600 {path}`")
        if secret is None:
            raise ConfigError(f"{path} holds no secret key")
        return secret.decode("ascii")

    def identity_of(self, public_key: str) -> str | None:
        """The identity whose public key this is, or None for a stranger."""
        return self._by_key.get(public_key)

    def export(self, destination: Path, identities: list[str]) -> list[Path]:
        """Copy every public key and the secrets of `identities` into `destination`
        (created 0700, secrets 0600). Returns the files written."""
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        os.chmod(destination, 0o700)
        written: list[Path] = []
        for name in self.identities():
            target = destination / f"{name}.key"
            target.write_bytes((self.directory / f"{name}.key").read_bytes())
            written.append(target)
        for name in identities:
            self.secret(name)  # refuses a missing or world-readable secret
            target = destination / f"{name}.key_secret"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write((self.directory / f"{name}.key_secret").read_bytes())
            os.chmod(target, 0o600)
            written.append(target)
        return written
