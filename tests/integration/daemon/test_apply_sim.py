"""The daemon core (observe → plan → apply) on the simulated ConnectX-6 Dx host: the seed from nothing, spec
changes, resets, an externally managed PF, OVS hw-offload over real OVSDB, and kill -9 mid-apply."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from integration.host.ovs_daemons import running_ovs, unavailable
from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.apply import OVS_ENABLED_NOTE, OVS_RESTART_NOTE
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.linux.ovsdb import OvsdbOvs
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.sim.kernel import LOCK_FILE
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, PciAddress, VdpaConfig, VdpaMgmtDev, vdpa_name

PF0, PF1 = PciAddress("0000:65:00.0"), PciAddress("0000:65:00.1")
SEED = json.loads((Path(__file__).parents[2] / "golden/seed-node-state-spec.json").read_text())
"""The seed policy rendered for worker-0 (the render tests keep this file true)."""


def spec_from(data: dict[str, Any]) -> SriovNetworkNodeStateSpec:
    return SriovNetworkNodeStateSpec.model_validate(data)


def seed(**group_changes: Any) -> SriovNetworkNodeStateSpec:
    data = json.loads(json.dumps(SEED))
    for iface in data["interfaces"]:
        for group in iface["vfGroups"]:
            group.update(group_changes)
            if group.get("vdpaType") is None:
                group.pop("vdpaType")
    return spec_from(data)


def only(pf: str, data: dict[str, Any] = SEED, **changes: Any) -> SriovNetworkNodeStateSpec:
    iface = next(i for i in json.loads(json.dumps(data))["interfaces"] if i["pciAddress"] == pf)
    iface.update(changes)
    return spec_from({"interfaces": [iface]})


@pytest.fixture
def kernel(tmp_path: Path) -> SimKernel:
    return SimKernel.create(tmp_path / "host", real_netdevs=False)


@pytest.fixture
def agent(kernel: SimKernel, tmp_path: Path) -> NodeAgent:
    return NodeAgent(sim_host(kernel), DaemonStore(tmp_path / "store"), DEFAULT_SUPPORTED_NICS)


def converge(agent: NodeAgent, spec: SriovNetworkNodeStateSpec) -> list[str]:
    """Apply once; assert it succeeded and left nothing to do. Returns the notes."""
    observed = agent.observe()
    result = agent.apply(agent.plan(spec, observed), observed)
    assert result.ok, result.error_message()
    again = agent.plan(spec, agent.observe())
    assert again.steps == (), [s.describe() for s in again.steps]
    assert agent.store.journal() is None
    return result.notes


def status(agent: NodeAgent) -> dict[str, dict[str, Any]]:
    return {i.pci_address: i.to_go_dict() for i in agent.observe().interfaces}


def test_seed_from_nothing(agent: NodeAgent, kernel: SimKernel) -> None:
    converge(agent, seed())
    for pf, name in ((PF0, "ens1f0"), (PF1, "ens1f1")):
        iface = status(agent)[pf]
        assert (iface["name"], iface["eSwitchMode"], iface["numVfs"]) == (name, "switchdev", 2)
        assert [(v["vfID"], v["vdpaType"], v["representorName"], v["driver"]) for v in iface["Vfs"]] == [
            (0, "virtio", f"{name}_0", "mlx5_core"), (1, "virtio", f"{name}_1", "mlx5_core")]
    host = sim_host(kernel)
    assert sorted(d.name for d in host.vdpa.devices()) == [
        "vdpa:0000:65:00.2", "vdpa:0000:65:00.3", "vdpa:0000:65:01.2", "vdpa:0000:65:01.3"]
    assert host.vdpa.binding("vdpa:0000:65:00.2").virtio_netdev  # a virtio_net netdev the CNI can move
    assert host.devlink.param(DevlinkHandle.pci(PF0), "flow_steering_mode").value == "smfs"  # type: ignore[union-attr]
    assert host.ethtool.feature("ens1f0", "hw-tc-offload") is True
    assert sorted(host.udev.rules()) == sorted(f"{p}-{pf}.rules" for pf in (PF0, PF1)
                                               for p in ("10-nm-disable", "10-pf-name", "20-switchdev"))
    macs = host.links.vf_macs("ens1f0")
    assert macs == {0: host.links.get("ens1f0v0").mac, 1: host.links.get("ens1f0v1").mac}
    assert sorted(agent.store.records()) == [PF0, PF1]
    assert {i.eswitch_mode for i in agent.store.initial_state().values()} == {"legacy"}


def test_virtio_to_vhost(agent: NodeAgent, kernel: SimKernel) -> None:
    converge(agent, seed())
    converge(agent, seed(vdpaType="vhost"))
    host = sim_host(kernel)
    assert {v["vdpaType"] for i in status(agent).values() for v in i["Vfs"]} == {"vhost"}
    binding = host.vdpa.binding("vdpa:0000:65:00.2")
    assert binding.driver == "vhost_vdpa" and binding.vhost_chardev and binding.virtio_netdev is None
    assert host.modules.is_loaded("vhost_vdpa")


def test_vdpa_removed_when_vdpa_type_dropped(agent: NodeAgent, kernel: SimKernel) -> None:
    converge(agent, seed())
    converge(agent, seed(vdpaType=None))
    assert sim_host(kernel).vdpa.devices() == []
    iface = status(agent)[PF0]
    assert iface["eSwitchMode"] == "switchdev" and [v.get("vdpaType", "") for v in iface["Vfs"]] == ["", ""]


def test_switchdev_to_legacy_and_reset_of_a_pf_that_left_the_spec(agent: NodeAgent, kernel: SimKernel) -> None:
    converge(agent, seed())
    legacy = only(PF0, eSwitchMode="legacy", vfGroups=[{**SEED["interfaces"][0]["vfGroups"][0], "vdpaType": ""}])
    converge(agent, legacy)
    host = sim_host(kernel)
    pf0, pf1 = status(agent)[PF0], status(agent)[PF1]
    assert (pf0["eSwitchMode"], pf0["numVfs"]) == ("legacy", 2)
    assert all("representorName" not in v and "vdpaType" not in v for v in pf0["Vfs"])
    assert (pf1["eSwitchMode"], pf1.get("numVfs", 0)) == ("legacy", 0)  # reset to the first-seen state
    assert host.vdpa.devices() == []
    assert sorted(host.udev.rules()) == [f"10-nm-disable-{PF0}.rules"]
    assert sorted(agent.store.records()) == [PF0]


def test_externally_managed_pf(agent: NodeAgent, kernel: SimKernel) -> None:
    """The admin made the VFs and the switchdev mode; the daemon only adds the vDPA devices, and leaving the
    spec only drops the record."""
    host = sim_host(kernel)
    host.pci.set_numvfs(PF0, 2)
    for vf in host.pci.list_vfs(PF0):
        host.pci.unbind(vf.address)
    host.devlink.set_eswitch_mode(DevlinkHandle.pci(PF0), EswitchMode.SWITCHDEV)
    for vf in host.pci.list_vfs(PF0):
        host.pci.bind_default(vf.address)
    converge(agent, only(PF0, externallyManaged=True))
    assert [v["vdpaType"] for v in status(agent)[PF0]["Vfs"]] == ["virtio", "virtio"]
    assert status(agent)[PF0]["externallyManaged"] is True
    assert host.udev.rules() == {}  # no PF stage
    assert host.devlink.param(DevlinkHandle.pci(PF0), "flow_steering_mode").value == "dmfs"  # type: ignore[union-attr]
    converge(agent, spec_from({}))
    assert agent.store.records() == {}
    assert status(agent)[PF0]["numVfs"] == 2  # the admin's VFs stay


def test_unexpected_vdpa_device_on_a_vf_is_replaced_by_binding(agent: NodeAgent, kernel: SimKernel) -> None:
    """A vDPA device someone bound to another driver drifts; the next apply rebinds it (no delete/create)."""
    converge(agent, seed())
    host = sim_host(kernel)
    host.modules.load("vhost_vdpa")
    host.vdpa.bind("vdpa:0000:65:00.3", "vhost_vdpa")  # type: ignore[arg-type]
    observed = agent.observe()
    planned = agent.plan(seed(), observed)
    assert [s.describe() for s in planned.steps if s.vf] == ["bind vdpa:0000:65:00.3 to virtio_vdpa"]
    converge(agent, seed())


@pytest.mark.ovs
@pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")
def test_ovs_hw_offload_set_and_removed_through_ovsdb(kernel: SimKernel, tmp_path: Path) -> None:
    with running_ovs() as daemons:  # vswitchd acknowledges each write (next_cfg)
        ovs = OvsdbOvs(daemons.remote)
        try:
            agent = NodeAgent(sim_host(kernel, ovs=ovs), DaemonStore(tmp_path / "store"), DEFAULT_SUPPORTED_NICS)
            notes = converge(agent, seed())
            assert ovs.other_config().get("hw-offload") == "true"
            assert OVS_ENABLED_NOTE in notes and agent.store.owns_ovs_offload()
            notes = converge(agent, spec_from({}))
            assert "hw-offload" not in ovs.other_config() and not agent.store.owns_ovs_offload()
            assert OVS_RESTART_NOTE in notes
        finally:
            ovs.close()


# --- kill -9 ----------------------------------------------------------------------------------------------------


def _vdpactl(*args: str, root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "VDPA_SIM_ROOT": str(root)}
    return subprocess.Popen([sys.executable, "-m", "vdpa_operator.cli", *args, "--host", "sim"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_stuck(root: Path, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """The delayed fault sleeps inside the kernel operation holding the sim's state lock (as the kernel holds
    its locks): the lock held for half a second means the apply is stuck at the faulted step."""
    deadline = time.monotonic() + timeout
    held_since: float | None = None
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"vdpactl exited early: {proc.communicate()}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                held_since = None
            except BlockingIOError:
                held_since = held_since or time.monotonic()
                if time.monotonic() - held_since > 0.5:
                    return
            time.sleep(0.02)
    finally:
        os.close(fd)
    raise AssertionError(f"the apply never got stuck at the faulted step within {timeout}s")


@pytest.mark.parametrize("stop_at", ["set eswitch mode switchdev on pci/0000:65:00.1", "create vdpa device"])
def test_kill_9_mid_apply_then_converge(tmp_path: Path, stop_at: str) -> None:
    """Kill the one-shot apply while a step is stuck in the kernel; a new run finishes the job, and a spec that
    drops a PF meanwhile still resets it: no vDPA device, VF or record is left behind."""
    root = tmp_path / "host"
    kernel = SimKernel.create(root, real_netdevs=False)
    op, target = (("eswitch_set", f"pci/{PF1}") if "eswitch" in stop_at else ("vdpa_dev_new", "vdpa:0000:65:00.3"))
    kernel.faults.inject(op, delay=30.0, target=target)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
                                 "metadata": {"name": "worker-0", "namespace": "openshift-sriov-network-operator"},
                                 "spec": SEED}))
    proc = _vdpactl("node", "apply", "-f", str(state), root=root)
    try:
        _wait_until_stuck(root, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    kernel.faults.clear()

    store = DaemonStore(root / "etc/sriov-operator")
    journal = store.journal()
    assert journal is not None and journal.done < journal.total
    touched = [PF0, PF1] if PF1 in stop_at else [PF0]
    assert sorted(store.records()) == touched  # a PF's record goes first
    state.write_text(json.dumps({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
                                 "metadata": {"name": "worker-0"}, "spec": only(PF0).to_go_dict()}))
    rerun = _vdpactl("node", "apply", "-f", str(state), root=root)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert "syncStatus: Succeeded" in out
    assert "re-checking" in err  # told the user it resumed

    host = SimKernel.open(root)
    agent = NodeAgent(sim_host(host), store, DEFAULT_SUPPORTED_NICS)
    assert agent.plan(only(PF0), agent.observe()).steps == ()
    assert store.journal() is None and sorted(store.records()) == [PF0]
    assert sorted(d.name for d in sim_host(host).vdpa.devices()) == ["vdpa:0000:65:00.2", "vdpa:0000:65:00.3"]
    pf1 = status(agent)[PF1]
    assert (pf1["eSwitchMode"], pf1.get("numVfs", 0)) == ("legacy", 0)


def test_apply_to_a_vf_that_already_has_a_foreign_vdpa_device(agent: NodeAgent, kernel: SimKernel) -> None:
    """ENOSPC path: one vDPA device per VF. A device of another name on the VF makes create fail clearly."""
    host: Host = sim_host(kernel)
    converge(agent, seed(vdpaType=None))
    host.vdpa.create("other", VdpaMgmtDev("pci", "0000:65:00.2"), VdpaConfig())
    observed = agent.observe()
    result = agent.apply(agent.plan(seed(), observed), observed)
    assert not result.ok
    assert "create vdpa device vdpa:0000:65:00.2 max_vqp 32" in result.error_message()
    assert "ENOSPC" in result.error_message()
    host.vdpa.delete("other")
    converge(agent, seed())
    assert vdpa_name(PciAddress("0000:65:00.2")) in {d.name for d in host.vdpa.devices()}
