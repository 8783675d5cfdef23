"""Host side of the kernel tier: build the QEMU bed (cached) and boot ONE guest per session that runs the
contract tests on the kernel bed plus the bed's own checks (guest_results.GUEST_TEST_DIRS).

Why one boot: under TCG a boot costs ~4 s and the guest's pytest start ~10 s, so one guest runs everything and
the host tests only read its JUnit XML. The boot happens only when a test here asks for `guest_session`.

Env: VDPA_REQUIRE_KERNEL_TIER=1 turns "this machine cannot host the bed" from a skip into a failure (CI);
VDPA_KERNEL_TIMEOUT (seconds, default 480) bounds the guest; VDPA_KERNEL_KEEP=1 keeps the guest's out dir.
This conftest is also loaded inside the guest (it is the parent of tests/kernel/guest); there it does nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kernel.guest_results import Case, GuestSession, guest_dirs, parse_junit
from kernel.testbed import REPO, BedPaths, GuestRun, TestbedUnavailable, ensure_built, run_in_guest

collect_ignore_glob = ["testbed/*"]  # build helpers, not tests

IN_GUEST = os.environ.get("VDPA_CONTRACT_BED") == "kernel"
REQUIRED = os.environ.get("VDPA_REQUIRE_KERNEL_TIER") == "1"
TIMEOUT = float(os.environ.get("VDPA_KERNEL_TIMEOUT", "480"))
KEEP = os.environ.get("VDPA_KERNEL_KEEP") == "1"


@dataclass
class TierReport:
    """What the terminal summary prints, whatever happened."""

    unavailable: str | None = None
    bed: BedPaths | None = None
    lookup_seconds: float = 0.0
    run: GuestRun | None = None
    cases: list[Case] = field(default_factory=list)
    error: str | None = None
    precompile_seconds: float | None = None


REPORT = pytest.StashKey[TierReport]()


def warm_bytecode() -> None:
    """Write the guest's bytecode on the host, where it takes a second, not in the guest, where it takes ~10 s
    under TCG at every boot (the guest's writes land in a throw-away overlay). A host-side `--collect-only` of
    the guest's tests leaves pytest's assertion-rewritten test modules and the modules they import; compileall
    covers the rest of src/. Writes only gitignored __pycache__ directories, also when PYTHONDONTWRITEBYTECODE
    is set; VDPA_KERNEL_PRECOMPILE=0 turns it off. Failures are ignored: the guest then compiles for itself."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    collect = ["pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *guest_dirs(REPO)]
    for argv, extra in ((collect, {"VDPA_CONTRACT_BED": "kernel"}), (["compileall", "-q", "src"], {})):
        subprocess.run(
            [sys.executable, "-m", *argv],
            env={**env, **extra},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


@pytest.fixture(scope="session")
def guest_session(request: pytest.FixtureRequest) -> Iterator[GuestSession]:
    if IN_GUEST:
        pytest.skip("already inside the guest")
    report = request.config.stash.setdefault(REPORT, TierReport())
    start = time.monotonic()
    try:
        bed = ensure_built()
    except TestbedUnavailable as exc:
        report.unavailable = exc.reason
        if REQUIRED:
            pytest.fail(f"VDPA_REQUIRE_KERNEL_TIER=1 but the kernel bed is unavailable: {exc.reason}", pytrace=False)
        pytest.skip(f"kernel bed unavailable: {exc.reason}")
    report.bed, report.lookup_seconds = bed, time.monotonic() - start

    if os.environ.get("VDPA_KERNEL_PRECOMPILE", "1") == "1":
        start = time.monotonic()
        warm_bytecode()
        report.precompile_seconds = time.monotonic() - start
    out_dir = Path(tempfile.mkdtemp(prefix="vdpa-kbed-"))
    junit = out_dir / "junit.xml"
    argv = [sys.executable, "-m", "pytest", *guest_dirs(REPO), "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"]
    try:
        try:
            run = run_in_guest(
                argv, cwd=str(REPO), env={"VDPA_CONTRACT_BED": "kernel"}, timeout=TIMEOUT, out_dir=out_dir, bed=bed
            )
        except Exception as exc:
            report.error = str(exc).splitlines()[0]
            raise
        report.run = run
        report.cases = parse_junit(junit) if junit.exists() else []
        yield GuestSession(run=run, junit=junit, cases=report.cases)
    finally:
        if not KEEP:
            shutil.rmtree(out_dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Timings and availability, printed whether or not output capture is on."""
    report = config.stash.get(REPORT, None)
    if report is None:
        return
    tr = terminalreporter
    tr.section("kernel tier (QEMU guest)")
    if report.unavailable:
        tr.write_line(f"unavailable: {report.unavailable}")
        return
    if bed := report.bed:
        state = "built by this run" if bed.built_now else f"cached, found in {report.lookup_seconds:.2f} s"
        tr.write_line(f"bed {bed.kv} ({state}; its build took {bed.build_seconds:.1f} s) at {bed.root}")
    if report.precompile_seconds is not None:
        tr.write_line(f"bytecode for the guest written on the host in {report.precompile_seconds:.1f} s")
    if report.error:
        tr.write_line(f"guest failed: {report.error}")
    if run := report.run:
        counts: dict[str, int] = {}
        for case in report.cases:
            counts[case.outcome] = counts.get(case.outcome, 0) + 1
        tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no JUnit results"
        tr.write_line(
            f"guest: wall {run.wall_seconds:.1f} s (uptime at job start {_seconds(run.boot_seconds)},"
            f" pytest {_seconds(run.job_seconds)}); rc {run.rc}; {tally}"
        )
        if KEEP:
            tr.write_line(f"guest out dir kept: {run.out_dir}")


def _seconds(value: float | None) -> str:
    """A guest figure, or say it was not measured (no `timing` file) rather than print 0."""
    return "not measured" if value is None else f"{value:.1f} s"
