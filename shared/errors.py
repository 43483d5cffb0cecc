"""Domain errors of depotwatch, translated from library errors at the edges.

    DepotwatchError                 base of everything raised on purpose
    ├── ConfigError                 a configuration file is invalid; `issues` names each key at fault
    │   └── LayoutError             the facility layout is invalid
    ├── ContractError               a payload or topic does not follow the message contract
    │   ├── MalformedPayload        not decodable, not valid against its model, or too large
    │   └── UnknownTopic            a topic outside the namespace
    ├── CalibrationError            a camera calibration cannot map image points to track metres
    ├── Unavailable                 a database or server a setting names cannot be used; names the setting
    └── SimulatorError              the simulator was asked for something it cannot produce

Adapters map library errors (pydantic, cv2, yaml) into these with ``raise ... from exc`` so callers
catch one family and the API turns them into 4xx answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class DepotwatchError(Exception):
    """Base of every error depotwatch raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file: the dotted key path and what is wrong with it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(DepotwatchError):
    """A configuration file is invalid; every issue names the key at fault."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        if len(self.issues) == 1:
            super().__init__(f"{source}: {self.issues[0]}")
            return
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"{source}: {len(self.issues)} invalid settings:\n{lines}")


class LayoutError(ConfigError):
    """The facility layout is invalid."""


class ContractError(DepotwatchError):
    """A payload or topic does not follow the message contract."""


class MalformedPayload(ContractError):
    """A payload could not be decoded or validated against its model."""


class UnknownTopic(ContractError):
    """A topic that is not part of the depotwatch namespace."""


class CalibrationError(DepotwatchError):
    """A calibration cannot map image points to track metres."""


class Unavailable(DepotwatchError):
    """A database or server that a setting names cannot be used (refused, missing, unreadable): one
    line naming the setting, what is wrong and what to do."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {problem}")


class SimulatorError(DepotwatchError):
    """The simulator was asked for something it cannot produce."""
