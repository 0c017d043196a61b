"""leadersim: lease-based leader election, for real and in simulation.

The elector is a faithful port of tiflow's ``pkg/election``: run it against SQLite (the
embedded default) or a server database, or inside a deterministic simulator.
"""

from leadersim.clock import Clock, RealClock
from leadersim.config import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RENEW_INTERVAL,
    Config,
    LeaderCallback,
)
from leadersim.elector import Elector
from leadersim.errors import (
    ConfigError,
    CorruptRecordError,
    LeadersimError,
    NotLeaderError,
    RecordConflictError,
    RenewFailedError,
    ResignTimeoutError,
    SafetyWarning,
    StorageContentionError,
    StorageError,
    StorageUnavailableError,
)
from leadersim.explore import explore
from leadersim.record import Member, Record, record_from_json, record_to_json
from leadersim.storage.base import TABLE_NAME_ELECTION, LeaderLockStorage, Storage
from leadersim.storage.sqlite import SQLStorage
from leadersim.sweep import sweep
from leadersim.trace import EventKind, Observer, TraceEvent, TraceRecorder

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The simulator and the analysis pull in SimPy and (lazily) pandas: load them only
    # when asked for, so that `import leadersim` stays light for real deployments.
    if name in ("simulate", "resolve_scenario"):
        from leadersim import experiment

        return getattr(experiment, name)
    if name == "compare":
        from leadersim.comparison import compare

        return compare
    if name in ("fit_latency", "fit_timers"):
        from leadersim.analysis import calibration

        return getattr(calibration, name)
    if name == "Result":
        from leadersim.analysis.result import Result

        return Result
    if name == "ORMStorage":
        # SQLAlchemy is imported only by those who use the server storage.
        from leadersim.storage.orm import ORMStorage

        return ORMStorage
    if name == "Scenario":
        from leadersim.sim.scenario import Scenario

        return Scenario
    raise AttributeError(f"module 'leadersim' has no attribute {name!r}")


__all__ = [
    "DEFAULT_LEASE_DURATION",
    "DEFAULT_RENEW_DEADLINE",
    "DEFAULT_RENEW_INTERVAL",
    "TABLE_NAME_ELECTION",
    "Clock",
    "Config",
    "ConfigError",
    "CorruptRecordError",
    "Elector",
    "EventKind",
    "LeaderCallback",
    "LeaderLockStorage",
    "LeadersimError",
    "Member",
    "NotLeaderError",
    "ORMStorage",
    "Observer",
    "RealClock",
    "Record",
    "RecordConflictError",
    "RenewFailedError",
    "ResignTimeoutError",
    "Result",
    "SQLStorage",
    "SafetyWarning",
    "Scenario",
    "Storage",
    "StorageContentionError",
    "StorageError",
    "StorageUnavailableError",
    "TraceEvent",
    "TraceRecorder",
    "compare",
    "explore",
    "fit_latency",
    "fit_timers",
    "record_from_json",
    "record_to_json",
    "simulate",
    "sweep",
]
