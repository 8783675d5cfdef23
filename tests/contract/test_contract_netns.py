"""Which paths are network namespaces, as a CNI ADD asks of CNI_NETNS before moving a netdev there: a fresh
netns (a named one, as CRI runtimes make them), this process's own, and things that are not one."""

from __future__ import annotations

from pathlib import Path

from contract.beds import Bed


def test_a_fresh_netns_exists(bed: Bed) -> None:
    assert bed.host.links.netns_exists(bed.new_netns())
    assert bed.host.links.netns_exists("/proc/self/ns/net")


def test_files_that_are_not_network_namespaces(bed: Bed, tmp_path: Path) -> None:
    regular = tmp_path / "not-a-netns"
    regular.write_text("")
    links = bed.host.links
    assert not links.netns_exists(str(regular))
    assert not links.netns_exists(str(tmp_path))  # a directory
    assert not links.netns_exists(str(tmp_path / "absent"))
    assert not links.netns_exists("/proc/self/ns/mnt")  # a namespace, of another type
