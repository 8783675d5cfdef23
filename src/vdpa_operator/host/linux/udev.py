"""udev rule files in the rules directory, and asking udevd to re-run them (contents: `host.udev_rules`).

`UdevRuleFiles` writes atomically (temp file + rename, mode 0644) so udevd never reads half a rule; upstream
writes in place. The helper scripts the rules call (`/etc/udev/disable-nm-sriov.sh`,
`/etc/udev/switchdev-vf-link-name.sh`) are installed by the deployment, not here. A node without udevd
(containers, the simulated host, this CI machine) is not an error: `reload` logs and returns.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from vdpa_operator.host.errors import HostError, HostTimeout, InvalidArgument, error_from_os_error

logger = logging.getLogger(__name__)

RULES_DIR = "/etc/udev/rules.d"
UDEVADM_TIMEOUT = 60.0


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
