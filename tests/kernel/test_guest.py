"""The kernel tier, seen from the host: one guest boot runs the contract tests on the real kernel (netdevsim,
vdpa_sim_net, OVS kernel datapath) plus the bed's own checks; here, one test per guest test file says how
that file did, and one says whether the guest run itself worked.

Skipped (with the reason in the terminal summary) on machines that cannot host the bed, unless
VDPA_REQUIRE_KERNEL_TIER=1. Skipped inside the guest, where the tests themselves run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kernel.guest_results import GuestSession, cases_of, describe, guest_files
from kernel.testbed import REPO

GUEST_FILES = guest_files(REPO)


def _log_tail(session: GuestSession, lines: int = 40) -> str:
    return "\n".join(session.run.log_text.rstrip().splitlines()[-lines:])


def test_guest_run_succeeded(guest_session: GuestSession, record_property: Callable[[str, object], None]) -> None:
    run = guest_session.run
    record_property("guest_wall_seconds", round(run.wall_seconds, 2))
    record_property("guest_boot_seconds", run.boot_seconds)
    record_property("guest_pytest_seconds", run.job_seconds)
    if not guest_session.junit.exists():
        pytest.fail(f"the guest's pytest wrote no JUnit XML (rc {run.rc}); its log ends:\n{_log_tail(guest_session)}")
    cases = guest_session.cases
    bad = [c for c in cases if c.outcome in ("failed", "error")]
    ran = [c for c in cases if c.outcome != "skipped"]
    assert not bad, f"{len(bad)} of {len(cases)} guest tests failed:\n{describe(bad, detail_lines=3)}"
    assert ran, f"no guest test ran ({len(cases)} skipped); log ends:\n{_log_tail(guest_session)}"
    unreported = sorted({c.classname or c.name for c in cases if not any(cases_of([c], f) for f in GUEST_FILES)})
    assert not unreported, f"guest results that no test_guest_file[...] reports (GUEST_FILES misses them): {unreported}"
    assert run.rc == 0, f"the guest's pytest exited {run.rc}; its log ends:\n{_log_tail(guest_session)}"


@pytest.mark.parametrize("path", GUEST_FILES)
def test_guest_file(guest_session: GuestSession, path: str) -> None:
    if not guest_session.junit.exists():
        pytest.fail("the guest wrote no JUnit XML; see test_guest_run_succeeded", pytrace=False)
    cases = cases_of(guest_session.cases, path)
    if not cases:
        pytest.fail(f"no test from {path} ran in the guest (not collected?)", pytrace=False)
    bad = [c for c in cases if c.outcome in ("failed", "error")]
    if bad:
        pytest.fail(f"{len(bad)} of {len(cases)} failed on the kernel bed:\n{describe(bad)}", pytrace=False)
    if all(c.outcome == "skipped" for c in cases):
        reasons = sorted({c.message for c in cases})
        pytest.skip(f"all {len(cases)} skipped in the guest: {'; '.join(reasons)}")
