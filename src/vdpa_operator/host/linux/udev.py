"""udev rule files the operator keeps per PF, and asking udevd to re-run them.

Users' nodes keep these files across operator versions and upgrades from the Go operator, so the three
renderers reproduce upstream's file names and contents byte for byte (`pkg/consts/constants.go`
`NMUdevRule`, `PFNameUdevRule`, `SwitchdevUdevRule`; `pkg/host/internal/udev/udev.go`): no trailing newline,
the same attribute order, the same helper script paths. The helper scripts themselves
(`/etc/udev/disable-nm-sriov.sh`, `/etc/udev/switchdev-vf-link-name.sh`) are installed by the deployment,
not here.

`UdevRuleFiles` writes atomically (temp file + rename, mode 0644) so udevd never reads half a rule; upstream
writes in place. A node without udevd (containers, the simulated host, this CI machine) is not an error:
`reload` logs and returns.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from vdpa_operator.host.errors import HostError, HostTimeout, InvalidArgument, error_from_os_error
from vdpa_operator.host.types import PciAddress

logger = logging.getLogger(__name__)

RULES_DIR = "/etc/udev/rules.d"
NM_DISABLE_PREFIX = "10-nm-disable"
PF_NAME_PREFIX = "10-pf-name"
SWITCHDEV_PREFIX = "20-switchdev"
UDEVADM_TIMEOUT = 60.0


# --- rule contents (pure) ---------------------------------------------------------------------------------------


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


# --- the rules directory ----------------------------------------------------------------------------------------


class UdevRuleFiles:
    """The `Udev` port: rule files in `rules_dir` and `udevadm` for reloading."""

    def __init__(self, rules_dir: str | os.PathLike[str] = RULES_DIR, udevadm: str = "udevadm") -> None:
        self.rules_dir = Path(rules_dir)
        self.udevadm = udevadm

    def rules(self, prefix: str = "") -> Mapping[str, str]:
        try:
            names = sorted(os.listdir(self.rules_dir))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise error_from_os_error(exc, "list udev rules in", str(self.rules_dir)) from exc
        found = {}
        for name in names:
            path = self.rules_dir / name
            if not name.startswith(prefix) or name.startswith(".") or not path.is_file():
                continue
            try:
                found[name] = path.read_text()
            except FileNotFoundError:
                continue  # removed while listing
            except OSError as exc:
                raise error_from_os_error(exc, "read udev rule", str(path)) from exc
        return found

    def write_rule(self, filename: str, content: str) -> bool:
        path = self._path(filename)
        try:
            if path.read_text() == content:
                return False
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise error_from_os_error(exc, "read udev rule", str(path)) from exc
        tmp = path.with_name(f".{filename}.{os.getpid()}.tmp")
        try:
            self.rules_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.fchmod(fd, 0o644)  # not subject to the umask
                os.write(fd, content.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise error_from_os_error(exc, "write udev rule", str(path)) from exc
        logger.info("wrote udev rule %s", path)
        return True

    def remove_rule(self, filename: str) -> bool:
        path = self._path(filename)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise error_from_os_error(exc, "remove udev rule", str(path)) from exc
        logger.info("removed udev rule %s", path)
        return True

    def reload(self) -> None:
        """`udevadm control --reload-rules`, then `udevadm trigger --action add --attr-match subsystem=net` so
        existing netdevs (representors) are renamed by the new rules. Without udevadm, or when the control
        call fails (no udevd: its control socket is absent), there is nothing to reload: logged at info."""
        if shutil.which(self.udevadm) is None:
            logger.info("%s not found; skipping the udev rules reload", self.udevadm)
            return
        control = self._run("control", "--reload-rules")
        if control.returncode != 0:
            logger.info("udevd does not answer (%s); skipping the udev rules reload",
                        control.stderr.strip() or f"exit {control.returncode}")
            return
        trigger = self._run("trigger", "--action", "add", "--attr-match", "subsystem=net")
        if trigger.returncode != 0:
            raise HostError("udevadm trigger for", "subsystem=net", detail=trigger.stderr.strip()
                            or f"exit {trigger.returncode}")
        logger.info("reloaded udev rules and triggered net devices")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self.udevadm, *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=UDEVADM_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostTimeout(" ".join(command), "udevd", errno.ETIMEDOUT,
                              detail=f"no answer in {UDEVADM_TIMEOUT:g}s") from exc
        except OSError as exc:
            raise error_from_os_error(exc, "run", " ".join(command)) from exc

    def _path(self, filename: str) -> Path:
        if not filename or "/" in filename or filename.startswith("."):
            raise InvalidArgument("use udev rule file name", repr(filename), errno.EINVAL,
                                  detail="expected a plain file name such as 10-nm-disable-0000:65:00.0.rules")
        return self.rules_dir / filename
