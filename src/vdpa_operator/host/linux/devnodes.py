"""Character devices under `/dev`: which of the nodes a pod may need exist on this machine.

The root is configurable because the device plugin runs in a container with the host's `/dev` mounted
somewhere else (or tests point it at a temporary directory). Only `stat(2)` is used: the node is never opened,
so asking does not autoload a module (opening `/dev/net/tun` would load tun).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vdpa_operator.host.errors import InvalidArgument, error_from_os_error

_ABSENT = {errno.ENOENT, errno.ENOTDIR}
"""stat errno that mean "no such node" (ENOTDIR: a path component is a file, e.g. `net` without `net/tun`)."""


class DevfsNodes:
    """The `DevNodes` port on a devtmpfs-like directory."""

    def __init__(self, dev_root: str | os.PathLike[str] = "/dev") -> None:
        self.dev_root = Path(dev_root)

    def char_device(self, name: str) -> str | None:
        path = self._path(name)
        try:
            found = self._is_char_device(path)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise error_from_os_error(exc, "stat", str(path)) from exc
        return str(path) if found else None

    def _is_char_device(self, path: Path) -> bool:
        """The raw check; OSError carries the errno. The simulated host overrides only this."""
        return stat.S_ISCHR(os.stat(path).st_mode)

    def _path(self, name: str) -> Path:
        """`<dev root>/<name>`; an empty or absolute name, or one with `..` parts, would point elsewhere."""
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise InvalidArgument("look up device node", repr(name), errno.EINVAL,
                                  detail=f"not a name under {self.dev_root}", hint="pass e.g. `vhost-net`, `net/tun`")
        return self.dev_root / name
