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


class ControlRefused(RobolearnError):
    """The actor refused an operator command. `reason` is a short machine-readable slug
    ("estop_latched", "not_in_takeover", "bad_action", "driver_timeout", ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class UserError(RobolearnError):
    """A user-account operation was refused (bad name or role, weak password, duplicate)."""


class RewardModelError(RobolearnError):
    """A reward model cannot be trained, loaded or used (bad labels, missing checkpoint)."""


class ReplayError(RobolearnError):
    """An episode cannot be replayed in simulation (no joint log, unknown task, missing
    simulator)."""


class DatasetError(RobolearnError):
    """A dataset folder cannot be exported or imported (bad layout, truncated or malformed
    file, refused pickle); nothing was imported."""


class DeviceError(RobolearnError):
    """A device reports a fault the driver cannot clear by itself (e-stop pressed, reflex)."""


class CalibrationError(RobolearnError):
    """A calibration cannot be computed from the given data (board not seen, too few or
    degenerate views); nothing is stored."""


class PolicyFault(RobolearnError):
    """A policy cannot give a trustworthy action (its Q-values or outputs are NaN or inf);
    the actor holds the arm instead of acting. `reason` is a short slug for telemetry."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class TrainingDiverged(RobolearnError):
    """The learner's losses or network parameters went NaN or inf: it stops without
    publishing or checkpointing them, keeping the last good checkpoint."""


class EpisodeCorrupt(StoreError):
    """An episode's training file exists but cannot be read back whole (bad zip or zlib
    data, wrong array lengths); `Store.quarantine_episode` moves it aside."""
