"""A change to the simulated host costs what it changes (host/sim/tree.py `Rendering`, kernel/codec.py,
kernel/store.py): only the tree's pieces whose inputs changed are rendered again, only the objects that changed
are encoded again, and what the tree and `state.json` show is still exactly what a full render and a full
encode of the state give — also after another attachment changed the host, after a kernel error, and after an
unexpected exception inside a transaction."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from unit.host.sim_setup import PF0, to_switchdev
from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host, tree
from vdpa_operator.host.sim.kernel.codec import StateEncoder
from vdpa_operator.host.sim.kernel.store import STATE_FILE, StateStore
from vdpa_operator.host.sim.state import Netdev, State, to_json
from vdpa_operator.host.types import Address, VdpaConfig, VdpaDriver, VdpaMgmtDev

POD = "/var/run/netns/pod-a"


def _on_disk(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under `<root>/sys` and `<root>/dev`: its kind and its content or link target."""
    found: dict[str, tuple[str, str]] = {}
    for top in tree.MANAGED:
        for dirpath, dirnames, filenames in os.walk(root / top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if os.path.islink(path):
                    found[rel] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    found[rel] = ("dir", "")
                elif stat.S_ISCHR(os.stat(path).st_mode):
                    found[rel] = ("chardev", f"{os.major(os.stat(path).st_rdev)}:{os.minor(os.stat(path).st_rdev)}")
                else:
                    found[rel] = ("file", f"{Path(path).read_text()} {os.stat(path).st_mode & 0o777:o}")
    return found


def _fresh_render(state: State, root: Path) -> dict[str, tuple[str, str]]:
    """What a full render of `state` into an empty directory shows."""
    root.mkdir()
    tree.sync(root, state)
    return _on_disk(root)


def _full_encoding(state: State) -> str:
    return json.dumps(to_json(state), sort_keys=True, separators=(",", ":"))


def _changes(a: Host, b: Host) -> None:
    """Changes of every kind, alternating between two attachments, with kernel errors among them."""
    a.modules.load("virtio_vdpa")
    to_switchdev(a, 4)
    for index, vf in enumerate(("0000:65:00.2", "0000:65:00.3", "0000:65:00.4")):
        host = (a, b)[index % 2]
        host.vdpa.create(f"vdpa:{vf}", VdpaMgmtDev("pci", vf), VdpaConfig(mac=f"00:e8:ca:11:22:4{index}"))
    with pytest.raises(HostError):
        b.vdpa.create("vdpa:0000:65:00.2", VdpaMgmtDev("pci", "0000:65:00.2"))  # ENOSPC: one per VF
    b.modules.load("vhost_vdpa")
    a.vdpa.bind("vdpa:0000:65:00.3", VdpaDriver.VHOST)
    netdev = a.vdpa.binding("vdpa:0000:65:00.2").virtio_netdev
    assert netdev is not None
    b.links.move_to_netns(netdev, POD)
    a.links.rename(netdev, "eth0", netns=POD)
    a.links.add_address("eth0", Address("10.128.0.5", 24), netns=POD)
    b.links.set_up("ens1f0_1")
    a.links.set_mtu("ens1f0", 9000)
    b.links.set_vf_mac("ens1f0", 3, "02:00:00:00:00:03")
    a.links.rename("ens1f1", "uplink1")
    b.vdpa.delete("vdpa:0000:65:00.4")
    a.pci.set_numvfs("0000:65:00.1", 2)


def test_the_tree_and_the_state_file_after_many_changes_are_what_a_full_render_gives(tmp_path: Path) -> None:
    kernel = SimKernel.create(tmp_path / "host", real_netdevs=False)
    other = SimKernel.open(kernel.root)  # a second attachment: its own kept state and rendering
    _changes(sim_host(kernel), sim_host(other))
    state = kernel.snapshot()
    assert _on_disk(kernel.root) == _fresh_render(state, tmp_path / "fresh")
    assert (kernel.root / STATE_FILE).read_text() == _full_encoding(state)


def test_a_change_renders_only_the_pieces_it_touched(kernel: SimKernel, host: Host) -> None:
    to_switchdev(host, 8)
    rendering = tree.Rendering.of(kernel.snapshot())
    kept = dict(rendering.pieces)
    host.links.set_mtu("ens1f0v3", 9000)
    changed = rendering.update(kernel.snapshot())
    assert list(changed) == [f"{tree.netdev_dir(kernel.snapshot(), _netdev(kernel, 'ens1f0v3'))}/mtu"]
    rendered_again = [key for key, piece in rendering.pieces.items() if kept.get(key) is not piece]
    assert len(rendered_again) == 1 and rendered_again[0][0] == "netdev"


def _netdev(kernel: SimKernel, name: str) -> Netdev:
    return next(nd for nd in kernel.snapshot().netdevs if nd.name == name and nd.netns is None)


def test_the_encoder_notices_a_change_in_place_of_a_nested_list_or_dict(kernel: SimKernel, host: Host) -> None:
    to_switchdev(host, 2)
    state = kernel.snapshot()
    encoder = StateEncoder()
    assert encoder.encode(state) == _full_encoding(state)
    state.netdevs[1].altnames.append("enp101s0f0np0")
    state.pfs[str(PF0)].vf_macs["1"] = "02:00:00:00:00:01"
    assert encoder.encode(state) == _full_encoding(state)


def test_an_unexpected_exception_inside_a_transaction_leaves_the_host_as_it_was(kernel: SimKernel,
                                                                                   host: Host) -> None:
    """The transaction changes the kept state in place: a failure half-way must not leave that change behind
    in this process (the file and the tree never had it)."""
    host.pci.set_numvfs(PF0, 2)
    store = StateStore(kernel.root, lambda state: None)
    store.attach()
    before = _on_disk(kernel.root), (kernel.root / STATE_FILE).read_text()
    with pytest.raises(RuntimeError), store.transaction() as state:
        state.pfs[str(PF0)].numvfs = 7
        state.modules.remove("mlx5_core")
        raise RuntimeError("a bug in a rule")
    with store.reading() as state:
        assert state.pfs[str(PF0)].numvfs == 2 and "mlx5_core" in state.modules
    with store.transaction() as state:
        state.pci_autoprobe = False  # the next commit writes from what the file showed
    assert _on_disk(kernel.root) != before[0]
    state = kernel.snapshot()
    assert state.pfs[str(PF0)].numvfs == 2 and not state.pci_autoprobe
    assert _on_disk(kernel.root) == _fresh_render(state, kernel.root.parent / "fresh")


def test_a_kernel_error_commits_what_it_consumed_and_nothing_else(kernel: SimKernel, host: Host) -> None:
    kernel.faults.inject("sriov_numvfs", errno=errno.EBUSY, target=str(PF0))
    with pytest.raises(HostError):
        host.pci.set_numvfs(PF0, 2)
    state = kernel.snapshot()
    assert state.faults == [] and state.pfs[str(PF0)].numvfs == 0
    assert (kernel.root / STATE_FILE).read_text() == _full_encoding(state)
