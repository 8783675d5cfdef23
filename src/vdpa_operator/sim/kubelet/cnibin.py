"""The seed's NAD names CNI type `ovn-k8s-cni-overlay` (OVN-Kubernetes' plugin). This project's `vdpa-cni` does
that plugin's vDPA work with the same config, so on a simulated node the type is a symlink to `vdpa-cni` in the
node's CNI bin directory, made when a pod first needs it (the shim itself arrives with the config-daemon's init
container). A real `ovn-k8s-cni-overlay` already there is left alone."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

SERVED_BY = {"ovn-k8s-cni-overlay": "vdpa-cni"}


def serve(cni_bin_dir: Path, kind: str) -> str | None:
    """Make `kind` runnable when this project serves it: the program that serves it, None when not ours."""
    program = SERVED_BY.get(kind)
    if program is None:
        return None
    link = cni_bin_dir / kind
    if not os.path.lexists(link) and (cni_bin_dir / program).is_file():
        link.symlink_to(program)
        logger.info("CNI type %s is served by %s here: linked %s → %s", kind, program, link, program)
    return program if link.resolve().name == program else None
