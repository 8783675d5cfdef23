"""Reading and writing sysfs attribute files under a configurable root.

The root defaults to `/sys`; tests point it at a generated tree and the simulated host points it at the tree
it maintains (overriding `write` so that writes have the kernel's side effects). All other sysfs-reading
code in `host.linux` goes through one `Sysfs` object, so the same code reads the real kernel and the model.

Paths are given relative to the root (`bus/pci/devices/0000:65:00.0/sriov_numvfs`).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vdpa_operator.host.errors import error_from_os_error

_ABSENT = {errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTDIR}
"""errno values that mean "this attribute does not apply here" when reading (veth gives EOPNOTSUPP for
phys_port_name, a missing file ENOENT)."""


class Sysfs:
    def __init__(self, root: str | os.PathLike[str] = "/sys") -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        """The attribute's text without the trailing newline; HostError on failure."""
        try:
            return self.path(rel).read_text().rstrip("\n")
        except OSError as exc:
            raise error_from_os_error(exc, "read", str(self.path(rel))) from exc

    def read_optional(self, rel: str) -> str | None:
        """None when the attribute is absent or not supported by the device."""
        try:
            return self.path(rel).read_text().rstrip("\n")
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise error_from_os_error(exc, "read", str(self.path(rel))) from exc

    def read_int(
        self, rel: str, *, retries: int = 0, delay: float = 0.05, sleep: Callable[[float], None] = time.sleep
    ) -> int:
        """An integer attribute. Some drivers briefly return an empty file right after a change, so reads
        that come back empty are retried `retries` times."""
        for attempt in range(retries + 1):
            text = self.read(rel).strip()
            if text:
                try:
                    return int(text, 0)
                except ValueError as exc:
                    raise error_from_os_error(OSError(errno.EINVAL, f"not an integer: {text!r}"), "parse",
                                              str(self.path(rel))) from exc
            if attempt < retries:
                sleep(delay)
        raise error_from_os_error(OSError(errno.ENODATA, "empty"), "read", str(self.path(rel)))

    def write(self, rel: str, value: str) -> None:
        """Write `value` in one write(2), as `echo value > file` does; HostError with the kernel's errno."""
        path = self.path(rel)
        try:
            self._write_file(path, value)
        except OSError as exc:
            raise error_from_os_error(exc, f"write {value!r} to", str(path)) from exc

    def _write_file(self, path: Path, value: str) -> None:
        """The raw write(2); OSError carries the kernel's errno. The simulated host overrides only this."""
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def listdir(self, rel: str) -> list[str]:
        """Sorted entries; [] when the directory does not exist."""
        try:
            return sorted(os.listdir(self.path(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise error_from_os_error(exc, "list", str(self.path(rel))) from exc

    def link_name(self, rel: str) -> str | None:
        """Basename of a symlink's target (`driver` → `mlx5_core`); None when there is no link."""
        try:
            return os.path.basename(os.readlink(self.path(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a symlink
                return None
            raise error_from_os_error(exc, "readlink", str(self.path(rel))) from exc

    def resolve(self, rel: str) -> str:
        """Where the link `rel` leads (as `readlink -f` prints it), relative to the root; `rel` itself when it is
        not a link. Only the link is followed, never a directory on the way: sysfs's bus and class links point
        into `devices/`, whose directories are all real, so this is the real path at a readlink or two instead of
        an lstat per component. ValueError when it leads out of the tree."""
        current = os.path.normpath(rel)
        for _ in range(8):  # sysfs links are never chains longer than this
            try:
                target = os.readlink(self.path(current))
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOENT):  # not a link (any more), or gone
                    break
                raise error_from_os_error(exc, "readlink", str(self.path(current))) from exc
            current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        if current.startswith(("..", "/")):
            raise ValueError(f"{self.path(rel)} leads out of {self.root}: {current}")
        return current

    def set_driver_override(self, device: str, driver: str | None) -> None:
        """Write (or with None clear) `<device>/driver_override`; devices without the attribute are skipped, as
        upstream does. A lone newline clears it (the kernel's `driver_set_override` strips it and stores
        nothing; upstream's zero-length write never reaches the store function)."""
        path = f"{device}/driver_override"
        if self.exists(path):
            self.write(path, driver if driver is not None else "\n")

    @contextmanager
    def driver_override(self, device: str, driver: str) -> Iterator[None]:
        """`driver_override` set to `driver` for the block and cleared after it, failed or not: the middle
        step of upstream's `BindDriverByBusAndDevice` on any bus (`device` is `bus/<bus>/devices/<name>`)."""
        self.set_driver_override(device, driver)
        try:
            yield
        finally:
            self.set_driver_override(device, None)
