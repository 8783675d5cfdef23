"""`DevNodes` on the simulated host: the Linux adapter's own lookup (`DevfsNodes`: name check, errno →
HostError) on `<root>/dev` as `tree.py` renders it. Where mknod was not permitted a char device is a plain
file holding `major:minor`; that stand-in counts here, since it is what the sim's kernel made."""

from __future__ import annotations

from pathlib import Path

from vdpa_operator.host.linux.devnodes import DevfsNodes
from vdpa_operator.host.sim import tree
from vdpa_operator.host.sim.kernel import SimKernel


class SimDevNodes(DevfsNodes):
    def __init__(self, kernel: SimKernel) -> None:
        super().__init__(kernel.dev_root)

    def _is_char_device(self, path: Path) -> bool:
        return tree.is_char_device(path)
