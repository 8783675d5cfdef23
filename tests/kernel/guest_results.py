"""What the guest's pytest run reported, read back on the host from its JUnit XML.

Why: the host can't collect the guest's tests itself (they need the guest kernel to even set up), so the host
tier runs them all in one boot and then reports per guest test file, quoting each failing test and its
message, so a CI log says which contract broke on the real kernel without opening the guest's log.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.testbed import GuestRun

GUEST_TEST_DIRS = ("tests/contract", "tests/kernel/guest")
"""Run in the guest with VDPA_CONTRACT_BED=kernel: the contract tests on the kernel bed, and the bed's own
checks."""


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    outcome: str
    """passed, failed, error or skipped."""
    message: str = ""
    details: str = ""

    @property
    def title(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True)
class GuestSession:
    """The one guest run of a host pytest session."""

    run: GuestRun
    junit: Path
    cases: list[Case]
    """Empty when the guest wrote no JUnit XML (pytest did not start, or crashed)."""


def guest_files(repo: Path) -> list[str]:
    """Guest test files, relative to the repo, that exist in this checkout."""
    return sorted(
        str(p.relative_to(repo)) for d in GUEST_TEST_DIRS if (repo / d).is_dir() for p in (repo / d).rglob("test_*.py")
    )


def guest_dirs(repo: Path) -> list[str]:
    return [d for d in GUEST_TEST_DIRS if (repo / d).is_dir()]


def parse_junit(path: Path) -> list[Case]:
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        outcome, message, details = "passed", "", ""
        for tag in ("error", "failure", "skipped"):  # a teardown error may follow a failure: error wins
            found = tc.find(tag)
            if found is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message, details = found.get("message", ""), (found.text or "")
                break
        cases.append(Case(tc.get("classname", ""), tc.get("name", ""), outcome, message, details))
    return cases


def cases_of(cases: Sequence[Case], file: str) -> list[Case]:
    """The cases from one test file: pytest names them `tests.contract.test_x[.Class]`, and a file that failed
    to import becomes a case named after the module with an empty classname."""
    module = file.removesuffix(".py").replace("/", ".")
    return [c for c in cases if (key := c.classname or c.name) == module or key.startswith(module + ".")]


def describe(cases: Sequence[Case], *, detail_lines: int = 15) -> str:
    """Failing cases with their messages and the last lines of each traceback."""
    parts = []
    for c in cases:
        tail = "\n".join("    " + line for line in c.details.rstrip().splitlines()[-detail_lines:])
        parts.append(f"{c.outcome.upper()} {c.title}: {c.message}\n{tail}".rstrip())
    return "\n".join(parts)
