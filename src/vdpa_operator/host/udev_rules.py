"""The udev rule files the operator keeps per PF, as pure text (upstream-operator.md §4.8).

Users' nodes keep these files across operator versions and upgrades from the Go operator, so the three
renderers reproduce upstream's file names and contents byte for byte (`pkg/consts/constants.go`
`NMUdevRule`, `PFNameUdevRule`, `SwitchdevUdevRule`; `pkg/host/internal/udev/udev.go`): no trailing newline,
the same attribute order, the same helper script paths. Pure so that the daemon's plan can say which files
will change; `host.linux.udev` writes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from vdpa_operator.host.types import PciAddress

NM_DISABLE_PREFIX = "10-nm-disable"
PF_NAME_PREFIX = "10-pf-name"
SWITCHDEV_PREFIX = "20-switchdev"


def rule_filename(prefix: str, pf: PciAddress) -> str:
    """`<prefix>-<pf>.rules` (upstream `getRulePathForPF`)."""
    return f"{prefix}-{pf}.rules"


def rule_filenames(pf: PciAddress) -> tuple[str, str, str]:
    """All three rule files the operator may keep for `pf` (what a reset removes)."""
    return (rule_filename(NM_DISABLE_PREFIX, pf), rule_filename(PF_NAME_PREFIX, pf),
            rule_filename(SWITCHDEV_PREFIX, pf))


def nm_disable_rule(pf: PciAddress, vf_device_ids: Iterable[str]) -> tuple[str, str]:
    """Tell NetworkManager to leave `pf`'s VFs alone: the helper prints `NM_UNMANAGED=1` for a netdev whose
    `physfn` is `pf`. `vf_device_ids` are the VF device ids of every supported NIC (`101e` or `0x101e`); they
    are written as upstream's `GetSupportedVfIds` does: `0x`-prefixed, de-duplicated, numerically sorted."""
    ids = sorted({_hex_id(i) for i in vf_device_ids}, key=lambda i: int(i, 16))
    content = (
        'SUBSYSTEM=="net", '
        'ACTION=="add|change|move", '
        f'ATTRS{{device}}=="{"|".join(ids)}", '
        f'IMPORT{{program}}="/etc/udev/disable-nm-sriov.sh $env{{INTERFACE}} {pf}"'
    )
    return rule_filename(NM_DISABLE_PREFIX, pf), content


def pf_name_rule(pf: PciAddress, pf_name: str) -> tuple[str, str]:
    """Keep the PF's netdev name across the switch to switchdev (the driver re-registers the netdev)."""
    content = f'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", KERNELS=="{pf}", NAME="{pf_name}"'
    return rule_filename(PF_NAME_PREFIX, pf), content


def switchdev_rule(pf: PciAddress, switch_id: str, pf_port_name: str, pf_name: str) -> tuple[str, str]:
    """Name the PF's VF representors `<pf_name>_<vf index>`. `pf_port_name` is the PF's `phys_port_name`
    (`p0`); the rule matches representors named `pf0vf*` on the same `phys_switch_id`, and the helper script
    turns `pf0vf3` into `NUMBER=3`."""
    pf_number = pf_port_name.removeprefix("p")  # Go strings.TrimPrefix: one leading "p" at most
    content = (
        'SUBSYSTEM=="net", '
        'ACTION=="add|move", '
        f'ATTRS{{phys_switch_id}}=="{switch_id}", '
        f'ATTR{{phys_port_name}}=="pf{pf_number}vf*", '
        'IMPORT{program}="/etc/udev/switchdev-vf-link-name.sh $attr{phys_port_name}", '
        f'NAME="{pf_name}_$env{{NUMBER}}"'
    )
    return rule_filename(SWITCHDEV_PREFIX, pf), content


def _hex_id(text: str) -> str:
    value = text.strip().lower().removeprefix("0x")
    if not value or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{text!r} is not a PCI device id (expected hex such as 101e or 0x101e)")
    return "0x" + value
