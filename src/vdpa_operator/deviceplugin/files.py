"""The files the plugin leaves for others: device-info files (for the CNI, through Multus) and CDI specs (for
the container runtime). Each is written whole or not at all (a temporary file renamed into place) and
remembered, so a clean shutdown removes exactly what this process wrote."""

from __future__ import annotations

import logging
from pathlib import Path

from vdpa_operator.fileio import write_atomically

logger = logging.getLogger(__name__)

DEVICE_INFO_MODE = 0o444
"""Upstream's mode (nadutils `saveDeviceInfo`): readers must not rewrite the file."""


class OutputFiles:
    def __init__(self) -> None:
        self.written: set[Path] = set()

    def write(self, path: Path, text: str, mode: int = 0o644) -> None:
        """Replace `path` with `text` (upstream cleans a device-info file before it writes it again)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text.encode(), mode=mode)
        self.written.add(path)

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.written.discard(path)

    def remove_all(self) -> None:
        for path in sorted(self.written):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("could not remove %s: %s", path, exc)
        self.written.clear()


def remove_stale(directory: Path, prefix: str) -> list[Path]:
    """Remove files starting with `prefix` that an earlier run left (upstream `CleanupSpecs` for `sriov-dp-*`)."""
    removed = []
    for path in sorted(directory.glob(f"{prefix}*")) if directory.is_dir() else []:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
