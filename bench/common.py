"""What the bench scripts share: percentiles, the verdict printed next to each goal, stopping a child process.

The scripts run as `python bench/NAME.py`, which puts bench/ first on sys.path, so they import this module as
`common`.
"""

from __future__ import annotations

import signal
import subprocess
import sys


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def verdict(met: bool) -> str:
    """How a goal line ends: whether the goal was met."""
    return "met" if met else "NOT met"


def stop(proc: subprocess.Popen[bytes], name: str, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within timeout seconds (said on stderr)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name} did not exit within {timeout:g} s of SIGTERM; killed", file=sys.stderr)
        proc.kill()
        proc.wait()
