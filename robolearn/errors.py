"""Exception types raised across robolearn. Messages say what failed, what was expected,
what was seen and what to do next."""


class RobolearnError(Exception):
    """Base of every error robolearn raises on purpose."""


class ConfigError(RobolearnError):
    """A config file or value is invalid."""


class ProtocolError(RobolearnError):
    """A wire message failed validation. `reason` is a short machine-readable slug."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class PeerTimeout(RobolearnError):
    """A request/reply peer did not answer within its timeout."""


class DeviceNotConnected(RobolearnError):
    """A driver was used before connect() or after close()."""


class StaleFrame(RobolearnError):
    """The newest frame or state is older than the allowed age."""


class SafetyViolation(RobolearnError):
    """An action was refused by the safety filter (non-finite, or e-stop latched)."""


class StoreError(RobolearnError):
    """The episode store could not read or write what was asked."""
