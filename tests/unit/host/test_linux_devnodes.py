"""DevfsNodes on a temporary directory standing for /dev: real character devices made with mknod (as root),
and the things that must not count as one on Linux (a regular file, a directory, a missing path)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from vdpa_operator.host.errors import HostError, InvalidArgument
from vdpa_operator.host.linux.devnodes import DevfsNodes


def mknod(path: Path, major: int, minor: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    root = tmp_path / "dev"
    root.mkdir()
    return root


def test_a_char_device_is_found_by_its_path(dev: Path) -> None:
    mknod(dev / "vhost-net", 10, 238)
    mknod(dev / "net/tun", 10, 200)
    nodes = DevfsNodes(dev)
    assert nodes.char_device("vhost-net") == str(dev / "vhost-net")
    assert nodes.char_device("net/tun") == str(dev / "net/tun")


def test_what_is_not_a_char_device_is_none(dev: Path) -> None:
    (dev / "vhost-vdpa-0").write_text("246:0\n")  # the simulated host's stand-in: not a device on Linux
    (dev / "net").mkdir()
    (dev / "shm").write_text("")
    nodes = DevfsNodes(dev)
    assert nodes.char_device("vhost-vdpa-0") is None
    assert nodes.char_device("net") is None
    assert nodes.char_device("vhost-vdpa-1") is None
    assert nodes.char_device("shm/x") is None  # ENOTDIR: a path component is a file


def test_other_stat_failures_are_host_errors_naming_the_path(dev: Path) -> None:
    (dev / "loop").symlink_to("loop")
    with pytest.raises(HostError) as failure:
        DevfsNodes(dev).char_device("loop")
    assert failure.value.errno == errno.ELOOP
    assert str(dev / "loop") in str(failure.value)


@pytest.mark.parametrize("name", ["", "/dev/vhost-net", "../etc/passwd", "net/../../x"])
def test_a_name_that_leaves_the_dev_root_is_rejected(dev: Path, name: str) -> None:
    with pytest.raises(InvalidArgument) as failure:
        DevfsNodes(dev).char_device(name)
    assert failure.value.errno == errno.EINVAL
