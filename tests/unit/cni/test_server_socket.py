"""The CNI server's socket admits only root from the moment it exists: no window between bind and a chmod in
which another user could connect and ask for interfaces."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vdpa_operator.cni.server import private_unix_socket


def test_the_socket_is_0600_when_bound_whatever_the_umask(short_tmp: Path) -> None:
    path = short_tmp / "server.sock"
    old = os.umask(0)
    try:
        sock = private_unix_socket(path)
    finally:
        os.umask(old)
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    finally:
        sock.close()
