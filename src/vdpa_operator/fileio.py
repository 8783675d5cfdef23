"""Files and sockets that other programs read: written whole or not at all, at paths the kernel accepts."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

UNIX_PATH_MAX = 107
"""The longest path a unix socket may have: sun_path holds 108 bytes with the terminating NUL."""

SECRET_MODE = 0o600
"""Keys, tokens and kubeconfigs: readable by their owner only."""


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to a new temporary file beside `path` and rename it into place: a reader (or a crash) never
    sees half a file, and a failed write leaves neither the temporary file nor a changed `path`.

    The temporary file is created by this call (`O_EXCL`: a file or symlink already there, left over or planted,
    is never written through) with `mode` itself, so a key written 0600 is never readable by others, not even for
    a moment. The umask can only take bits away at creation; the mode is widened afterwards only to give back
    what it took (a 0644 certificate under umask 077), never narrowed."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                os.fchmod(fd, mode)
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def make_private_dir(path: Path) -> None:
    """Create `path` (and its parents) with the last level 0700; an existing directory is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
