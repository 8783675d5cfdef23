"""Check records, their table and JSON, and the exit code they add up to."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Check = Literal["driver", "ping", "flows"]
Status = Literal["pass", "fail", "simulated"]

EXIT_ALL_GOOD = 0
EXIT_FAILED = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One check on one pod. `observed` is what the cluster really showed; `reason` why it failed or why it is
    only simulated; `model` what the simulated host stands for (None on real hardware)."""

    check: Check
    pod: str
    """`namespace/name` (for ping: the pod that pings)."""
    node: str
    status: Status
    observed: str
    expected: str = ""
    reason: str = ""
    model: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Check-specific data: ping's peer and counts, the pod's parsed flows."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def exit_code(records: Sequence[Record]) -> int:
    return EXIT_FAILED if any(r.status == "fail" for r in records) or not records else EXIT_ALL_GOOD


def to_json(records: Sequence[Record]) -> str:
    return json.dumps([r.as_json() for r in records], indent=2)


_COLUMNS = ("CHECK", "POD", "NODE", "STATUS", "OBSERVED")


def to_table(records: Sequence[Record]) -> str:
    """One line per check; a simulated check carries its model in a last column."""
    rows = [(r.check, r.pod, r.node, r.status.upper(), r.observed, f"model: {r.model}" if r.model else "")
            for r in records]
    widths = [max(len(str(row[i])) for row in [(*_COLUMNS, ""), *rows]) for i in range(len(_COLUMNS))]
    lines = []
    for row in [(*_COLUMNS, ""), *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def failures(records: Sequence[Record]) -> list[str]:
    """One line per failed check: which, where, why."""
    return [f"{r.check} check failed for pod {r.pod} on node {r.node or '(unscheduled)'}: {r.reason or r.observed}"
            for r in records if r.status == "fail"]
