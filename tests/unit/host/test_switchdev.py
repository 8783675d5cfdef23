"""`host.switchdev` on the simulated ConnectX-6 Dx: which of the PF's netdevs is its uplink and which are the VF
representors, and the eswitch mode read as upstream reads it (any devlink failure is legacy)."""

from __future__ import annotations

from unit.host.sim_setup import PF0, to_switchdev
from vdpa_operator.host.port import Host
from vdpa_operator.host.switchdev import PfNetdevs, eswitch_mode, pf_netdevs
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, PortFlavour, pci_address

PF1 = pci_address("0000:65:00.1")


def netdevs_of(host: Host, pf: str = PF0, mode: str | None = None) -> PfNetdevs:
    return pf_netdevs(host, host.pci.get_function(pci_address(pf)), mode=mode)


def test_legacy_the_pf_netdev_is_the_uplink_and_there_are_no_representors(host: Host) -> None:
    host.pci.set_numvfs(PF0, 2)
    netdevs = netdevs_of(host)
    assert (netdevs.uplink, netdevs.representors) == ("ens1f0", {})
    assert netdevs.uplink_port == host.links.switch_port("ens1f0")
    assert netdevs.uplink_port is not None and netdevs.uplink_port.port_name == "p0"
    assert eswitch_mode(host, PF0) == EswitchMode.LEGACY


def test_switchdev_representors_by_vf_index_as_devlink_shows_them(host: Host) -> None:
    to_switchdev(host, 3, PF0)
    to_switchdev(host, 2, PF1)
    for pf, uplink in ((PF0, "ens1f0"), (PF1, "ens1f1")):
        netdevs = netdevs_of(host, pf)
        assert netdevs.uplink == uplink
        ports = host.devlink.ports(DevlinkHandle.pci(pci_address(pf)))
        assert netdevs.representors == {p.vfnum: p.netdev for p in ports if p.flavour == PortFlavour.PCI_VF}
    assert netdevs_of(host, PF0).representors == {0: "ens1f0_0", 1: "ens1f0_1", 2: "ens1f0_2"}
    assert eswitch_mode(host, PF0) == EswitchMode.SWITCHDEV


def test_a_mode_the_caller_has_read_is_taken_as_given(host: Host) -> None:
    to_switchdev(host, 2, PF0)
    assert netdevs_of(host, mode=str(EswitchMode.LEGACY)).representors == {}
    assert netdevs_of(host, mode=str(EswitchMode.SWITCHDEV)).representors == {0: "ens1f0_0", 1: "ens1f0_1"}


def test_a_pf_without_a_driver_has_no_netdevs(host: Host) -> None:
    host.pci.unbind(PF0)
    assert netdevs_of(host) == PfNetdevs(uplink="", uplink_port=None, representors={})


def test_eswitch_mode_reads_legacy_where_devlink_fails(host: Host) -> None:
    host.pci.set_numvfs(PF0, 1)
    vf = host.pci.list_vfs(PF0)[0].address
    assert eswitch_mode(host, vf) == EswitchMode.LEGACY  # a VF is no eswitch manager: EOPNOTSUPP
    assert eswitch_mode(host, pci_address("0000:ff:1f.7")) == EswitchMode.LEGACY  # no devlink device: ENODEV


def test_among_representors_the_uplink_is_the_p_n_switch_port_not_the_first_name(host: Host) -> None:
    to_switchdev(host, 2, PF0)
    host.links.rename("ens1f0", "uplink0")  # sorts after the representors in the PF's net/ directory
    assert host.pci.get_function(PF0).netdevs[0] == "ens1f0_0"
    netdevs = netdevs_of(host)
    assert netdevs.uplink == "uplink0"
    assert netdevs.uplink_port is not None and netdevs.uplink_port.port_name == "p0"
    assert netdevs.representors == {0: "ens1f0_0", 1: "ens1f0_1"}
