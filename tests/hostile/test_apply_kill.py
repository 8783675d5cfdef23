"""`vdpactl node apply` killed with SIGKILL before any step of the seed's NodeState, then run again, leaves the
simulated host exactly as an apply that was never interrupted — also when the kill left the apply journal
truncated (it is written without fsync), so the second run cannot lean on it.

The killed runs are processes of their own, forked from this one (the CLI imported already: a run costs its
work, ~0.1 s, not Python's start-up, ~0.4 s, which made this test take 20 s): each runs `vdpactl node apply
--host sim`, whose test hook (`VDPACTL_TEST_KILL_BEFORE_STEP`, honoured with `--host sim` only) SIGKILLs it
just before step k, as a power cut between two steps would. The second runs and the reference run in this
process.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
from node_runs import copy_host, differences, host_snapshot, rendered_seed, vdpactl

from vdpa_operator.cli import main
from vdpa_operator.cli.common import SIM_ROOT_ENV
from vdpa_operator.cli.node import KILL_BEFORE_STEP_ENV
from vdpa_operator.daemon.store import JOURNAL
from vdpa_operator.host.sim import SimKernel

SHM = Path("/dev/shm")
SHM_NEEDED = 256 * 2**20
"""The 38 simulated hosts that exist at once take ~40 MB; Docker's default /dev/shm is 64 MB."""


def _shm_usable() -> bool:
    if not (SHM.is_dir() and os.access(SHM, os.W_OK)):
        return False
    fs = os.statvfs(SHM)
    return fs.f_bavail * fs.f_frsize >= SHM_NEEDED


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Path]:
    """Where the simulated hosts go: in memory where the machine has room on a tmpfs (a sim apply writes its
    sysfs tree, ~450 small files; on a busy disk that is most of this test's time)."""
    if not _shm_usable():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="vdpa-kill-", dir=SHM))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_killed_apply(root: Path, state: Path, step: int, log: Path) -> int:
    """Fork a process that runs `vdpactl node apply` on the host at `root`, to be killed before `step`, its
    stderr in `log` (line-buffered: what it printed before the kill is there). Returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: never returns into pytest
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the process ends here
        sys.stderr = open(log, "w", buffering=1)  # noqa: SIM115
        os.environ.update({SIM_ROOT_ENV: str(root), KILL_BEFORE_STEP_ENV: str(step)})
        main(["node", "apply", "--host", "sim", "-f", str(state)], prog_name="vdpactl")
    finally:
        os._exit(70)


def wait_for_one(pids: Collection[int]) -> tuple[int, int]:
    """The first of `pids` to end, and its wait status. Not os.wait(): that would also reap children other tests
    of this process left running, whose owners then could not wait for them."""
    while True:
        for pid in pids:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return done, status
        time.sleep(0.005)


def run_killed(runs: dict[int, Path], state: Path, logs: Path) -> dict[int, tuple[int, str]]:
    """The killed runs, at most one per CPU at a time: (exit status, stderr) by step."""
    pending = sorted(runs)
    running: dict[int, int] = {}
    results: dict[int, tuple[int, str]] = {}
    try:
        while pending or running:
            while pending and len(running) < (os.cpu_count() or 1):
                step = pending.pop(0)
                running[start_killed_apply(runs[step], state, step, logs / f"{step}.err")] = step
            pid, status = wait_for_one(running)
            step = running.pop(pid)
            results[step] = (os.waitstatus_to_exitcode(status), (logs / f"{step}.err").read_text())
    finally:
        for pid in running:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return results


def applied_again(root: Path, state: Path) -> dict[str, Any]:
    """Apply again; the host afterwards (equal to a clean apply's, the next plan is as empty as its)."""
    code, _, err = vdpactl("node", "apply", "--host", "sim", "-f", str(state), root=root)
    assert code == 0, err
    return host_snapshot(root)


def test_apply_killed_before_any_step_then_run_again_converges_to_a_clean_apply(tmp_path: Path, hosts: Path) -> None:
    state = rendered_seed(tmp_path)
    fresh = hosts / "fresh"
    SimKernel.create(fresh, real_netdevs=False)
    clean = hosts / "clean"
    copy_host(fresh, clean)
    code, _, err = vdpactl("node", "apply", "--host", "sim", "-f", str(state), root=clean)
    assert code == 0, err
    total = int(re.findall(r"^\[\d+/(\d+)\]", err, re.MULTILINE)[-1])
    assert total == 36  # the seed's plan from a fresh host: this test covers each of its step boundaries
    code, out, err = vdpactl("node", "plan", "--host", "sim", "-f", str(state), root=clean)
    assert (code, out) == (0, "nothing to do: the node matches the spec\n"), err
    expected = host_snapshot(clean)

    roots = {k: hosts / f"killed-{k}" for k in range(1, total + 1)}
    for root in roots.values():
        copy_host(fresh, root)
    killed = run_killed(roots, state, tmp_path)

    for k, root in roots.items():
        code, err = killed[k]
        assert code == -signal.SIGKILL, f"step {k}: exit {code}: {err}"
        progress = re.findall(r"^\[(\d+)/\d+\]", err, re.MULTILINE)
        assert progress[-1:] == ([str(k - 1)] if k > 1 else []), f"killed after the wrong step: {err}"
        truncated = hosts / f"truncated-{k}"
        copy_host(root, truncated)
        journal = truncated / "etc/sriov-operator" / JOURNAL
        journal.write_bytes(journal.read_bytes()[: journal.stat().st_size // 2])

        assert not (diff := differences(applied_again(root, state), expected)), f"killed before step {k}: {diff}"
        again = applied_again(truncated, state)
        aside = [name for name in again["files"] if f"/{JOURNAL}.corrupt-" in name]
        assert len(aside) == 1, again["files"].keys()
        del again["files"][aside[0]]
        assert not (diff := differences(again, expected)), f"killed before step {k}, journal truncated: {diff}"
        shutil.rmtree(root)
        shutil.rmtree(truncated)
