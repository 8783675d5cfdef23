"""udev rule files: upstream's exact names and contents (nodes keep them across upgrades), atomic writes, and
a reload that is harmless where udevd does not run.

The golden strings are upstream's `NMUdevRule`, `PFNameUdevRule` and `SwitchdevUdevRule` (pkg/consts) filled
in the way `pkg/host/internal/udev/udev.go` fills them, written out literally here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vdpa_operator.host.errors import HostError, InvalidArgument
from vdpa_operator.host.linux.udev import UdevRuleFiles
from vdpa_operator.host.types import PciAddress
from vdpa_operator.host.udev_rules import nm_disable_rule, pf_name_rule, rule_filenames, switchdev_rule

PF = PciAddress("0000:65:00.0")


def test_nm_disable_rule_matches_upstream() -> None:
    assert nm_disable_rule(PF, ["0x1018", "0x101e", "0x154c"]) == (
        "10-nm-disable-0000:65:00.0.rules",
        'SUBSYSTEM=="net", ACTION=="add|change|move", ATTRS{device}=="0x1018|0x101e|0x154c", '
        'IMPORT{program}="/etc/udev/disable-nm-sriov.sh $env{INTERFACE} 0000:65:00.0"',
    )


def test_nm_disable_rule_ids_are_prefixed_deduplicated_and_sorted_numerically() -> None:
    _, content = nm_disable_rule(PF, ["154c", "101e", "0x101E", "1889", "1018", "154c"])
    assert 'ATTRS{device}=="0x1018|0x101e|0x154c|0x1889"' in content


def test_nm_disable_rule_rejects_an_id_that_is_not_hex() -> None:
    with pytest.raises(ValueError, match="mlx"):
        nm_disable_rule(PF, ["mlx"])


def test_pf_name_rule_matches_upstream() -> None:
    assert pf_name_rule(PF, "ens1f0np0") == (
        "10-pf-name-0000:65:00.0.rules",
        'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", KERNELS=="0000:65:00.0", NAME="ens1f0np0"',
    )


def test_switchdev_rule_matches_upstream() -> None:
    assert switchdev_rule(PF, "a4b2c3fffe0d1e2f", "p0", "ens1f0np0") == (
        "20-switchdev-0000:65:00.0.rules",
        'SUBSYSTEM=="net", ACTION=="add|move", ATTRS{phys_switch_id}=="a4b2c3fffe0d1e2f", '
        'ATTR{phys_port_name}=="pf0vf*", '
        'IMPORT{program}="/etc/udev/switchdev-vf-link-name.sh $attr{phys_port_name}", '
        'NAME="ens1f0np0_$env{NUMBER}"',
    )


def test_switchdev_rule_strips_one_leading_p_like_go_trimprefix() -> None:
    assert 'ATTR{phys_port_name}=="pf1vf*"' in switchdev_rule(PF, "ab", "p1", "x")[1]
    assert 'ATTR{phys_port_name}=="pfp1vf*"' in switchdev_rule(PF, "ab", "pp1", "x")[1]


def test_rule_filenames_lists_all_three() -> None:
    assert rule_filenames(PF) == (
        "10-nm-disable-0000:65:00.0.rules", "10-pf-name-0000:65:00.0.rules", "20-switchdev-0000:65:00.0.rules",
    )


# --- files ------------------------------------------------------------------------------------------------------


def test_write_rule_creates_the_directory_and_a_0644_file(tmp_path: Path) -> None:
    udev = UdevRuleFiles(tmp_path / "rules.d")
    old_umask = os.umask(0o077)
    try:
        assert udev.write_rule(*pf_name_rule(PF, "ens1f0np0")) is True
    finally:
        os.umask(old_umask)
    path = tmp_path / "rules.d/10-pf-name-0000:65:00.0.rules"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == pf_name_rule(PF, "ens1f0np0")[1]
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_write_rule_with_the_same_content_reports_no_change(tmp_path: Path) -> None:
    udev = UdevRuleFiles(tmp_path)
    udev.write_rule("10-pf-name-x.rules", "A")
    mtime = (tmp_path / "10-pf-name-x.rules").stat().st_mtime_ns
    assert udev.write_rule("10-pf-name-x.rules", "A") is False
    assert (tmp_path / "10-pf-name-x.rules").stat().st_mtime_ns == mtime
    assert udev.write_rule("10-pf-name-x.rules", "B") is True
    assert (tmp_path / "10-pf-name-x.rules").read_text() == "B"


def test_write_rule_replaces_the_file_rather_than_rewriting_it(tmp_path: Path) -> None:
    udev = UdevRuleFiles(tmp_path)
    udev.write_rule("r.rules", "old")
    inode = (tmp_path / "r.rules").stat().st_ino
    udev.write_rule("r.rules", "new")
    assert (tmp_path / "r.rules").stat().st_ino != inode


@pytest.mark.parametrize("name", ["", "../x.rules", "a/b.rules", ".hidden.rules"])
def test_rule_names_must_be_plain_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument):
        UdevRuleFiles(tmp_path).write_rule(name, "x")


def test_rules_filters_by_prefix(tmp_path: Path) -> None:
    udev = UdevRuleFiles(tmp_path)
    for filename, content in (nm_disable_rule(PF, ["101e"]), pf_name_rule(PF, "p"), switchdev_rule(PF, "i", "p0", "p")):
        udev.write_rule(filename, content)
    (tmp_path / "99-other.rules").write_text("other")
    assert set(udev.rules()) == {*rule_filenames(PF), "99-other.rules"}
    assert udev.rules("10-") == {
        "10-nm-disable-0000:65:00.0.rules": nm_disable_rule(PF, ["101e"])[1],
        "10-pf-name-0000:65:00.0.rules": pf_name_rule(PF, "p")[1],
    }


def test_rules_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert UdevRuleFiles(tmp_path / "absent").rules() == {}


def test_remove_rule(tmp_path: Path) -> None:
    udev = UdevRuleFiles(tmp_path)
    udev.write_rule("r.rules", "x")
    assert udev.remove_rule("r.rules") is True
    assert udev.remove_rule("r.rules") is False
    assert udev.rules() == {}


# --- reload -----------------------------------------------------------------------------------------------------


def fake_udevadm(tmp_path: Path, *, control_rc: int = 0, trigger_rc: int = 0) -> tuple[str, Path]:
    """A stand-in `udevadm` that records its arguments, one call per line."""
    log = tmp_path / "calls"
    script = tmp_path / "udevadm"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        f'case "$1" in control) echo "control failed" >&2; exit {control_rc};; '
        f'trigger) echo "trigger failed" >&2; exit {trigger_rc};; esac\n'
    )
    script.chmod(0o755)
    return str(script), log


def test_reload_runs_control_then_trigger(tmp_path: Path) -> None:
    udevadm, log = fake_udevadm(tmp_path)
    UdevRuleFiles(tmp_path, udevadm=udevadm).reload()
    assert log.read_text().splitlines() == ["control --reload-rules", "trigger --action add --attr-match subsystem=net"]


def test_reload_without_udevd_does_nothing_more(tmp_path: Path) -> None:
    udevadm, log = fake_udevadm(tmp_path, control_rc=1)
    UdevRuleFiles(tmp_path, udevadm=udevadm).reload()
    assert log.read_text().splitlines() == ["control --reload-rules"]


def test_reload_without_udevadm_is_not_an_error(tmp_path: Path) -> None:
    UdevRuleFiles(tmp_path, udevadm=str(tmp_path / "no-udevadm")).reload()


def test_reload_reports_a_failed_trigger(tmp_path: Path) -> None:
    udevadm, _ = fake_udevadm(tmp_path, trigger_rc=2)
    with pytest.raises(HostError, match="trigger failed"):
        UdevRuleFiles(tmp_path, udevadm=udevadm).reload()

