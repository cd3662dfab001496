"""What `diagnose` found, as plain data: computed by `headstart.select.diagnose`, rendered by `diagnose_report`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Diagnosis:
    """Everything `diagnose` found; lists hold item names (`where`) so that each finding can be acted on."""

    data: dict[str, Any]
    balance: dict[str, Any] | None
    exact_duplicates: list[dict[str, Any]]
    near_duplicates: list[dict[str, Any]]
    leakage: list[dict[str, Any]] | None
    label_issues: list[dict[str, Any]] | None
    outliers: list[dict[str, Any]]
    shift: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"title": f"diagnose: {self.data['source']}", **asdict(self)}
