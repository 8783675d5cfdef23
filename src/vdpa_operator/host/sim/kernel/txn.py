"""One transaction on the simulated kernel: the state a rule reads and changes, and the two things a rule
reaches outside it (the real veth pairs of privileged mode, and the timer that makes delayed VFs appear).

Every rule of the subsystem modules takes a `Txn` (or, when it only reads, the `State`); `SimKernel` opens the
transaction around each entry point, so a rule never locks, loads or saves anything itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vdpa_operator.host.sim.faults import take
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.state import State

if TYPE_CHECKING:
    from vdpa_operator.host.sim.realnet import RealNet


class Effects:
    """Per process, per kernel: the RealNet of privileged mode (made on first use) and the delayed-VF timer."""

    def __init__(self, tick: Callable[[], None]) -> None:
        self._tick = tick
        self._real: RealNet | None = None

    def real(self) -> RealNet:
        if self._real is None:
            from vdpa_operator.host.sim.realnet import RealNet

            self._real = RealNet()
        return self._real

    def tick_after(self, delay: float) -> None:
        """Let time pass after `delay` seconds even when nobody looks (`SimKernel.tick`)."""
        timer = threading.Timer(delay + 0.01, self._tick)
        timer.daemon = True
        timer.start()


@dataclass
class Txn:
    state: State
    effects: Effects

    def fault(self, op: str, target: str) -> None:
        """Raise the injected errno for (`op`, `target`) if a fault is due (see `faults.py`)."""
        code = take(self.state, op, target)
        if code is not None:
            raise KernelError(code, f"injected fault ({op})")

    def real(self) -> RealNet:
        return self.effects.real()

    def real_ns(self, ns: str | None) -> str | None:
        """The real netns that stands for a model netns (None: the node's)."""
        return self.state.config.node_netns if ns is None else ns
