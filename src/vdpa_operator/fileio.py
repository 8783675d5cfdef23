"""Files and sockets that other programs read: written whole or not at all, at paths the kernel accepts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

UNIX_PATH_MAX = 107
"""The longest path a unix socket may have: sun_path holds 108 bytes with the terminating NUL."""


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to a temporary file beside `path`, set `mode`, and rename it into place: a reader (or a
    crash) never sees half a file, and a failed write leaves neither the temporary file nor a changed `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), mode)  # open() applied the umask
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
