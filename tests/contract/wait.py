"""Polling instead of sleeping: kernels publish some objects a moment after the call that made them
(devlink dumps right after VFs appear came back empty once on the test bed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Call `probe` until it returns something truthy; return that. AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe!r}; last value {value!r}")
        time.sleep(interval)
