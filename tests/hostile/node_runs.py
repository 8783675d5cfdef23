"""What the hostile tests of the node daemon share: the seed's NodeState as `make demo` renders it, NodeState files
with a spec of the test's choosing, `vdpactl` run in-process on a simulated host, and the whole of that host as
one comparable value."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import scenario
from vdpa_operator.cli import main
from vdpa_operator.cli.common import SIM_ROOT_ENV
from vdpa_operator.host.sim.kernel import LOCK_FILE, STATE_FILE

NODE = "worker-0"
NODE_STATE_HEADER = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
                     "metadata": {"name": NODE, "namespace": "openshift-sriov-network-operator"}}


def vdpactl(*args: str, root: Path | None = None) -> tuple[int, str, str]:
    """`vdpactl ARGS` in this process (`VDPA_SIM_ROOT=root` when given): exit code, stdout, stderr."""
    env = {SIM_ROOT_ENV: str(root)} if root is not None else {}
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def rendered_seed(directory: Path) -> Path:
    """What `make demo` applies: `vdpactl render` of the seed policy for the example nodes (NodeStates, a
    ConfigMap and Nodes in one file)."""
    code, out, err = vdpactl("render", "-f", str(scenario.SEED_POLICY_FILE), "--node-states",
                             str(scenario.NODE_STATES_FILE), "--nodes", str(scenario.NODES_FILE))
    assert code == 0, err
    path = directory / "rendered.yaml"
    path.write_text(out)
    return path


def node_state_file(directory: Path, spec: Mapping[str, Any], name: str = "state.json") -> Path:
    path = directory / name
    path.write_text(json.dumps({**NODE_STATE_HEADER, "spec": spec}, indent=1))
    return path


def host_snapshot(root: Path) -> dict[str, Any]:
    """The simulated host as a value: its state but the count of changes that made it (`generation`), and every
    file under its root (the sysfs tree rendered from that state, device nodes, udev rules, the daemon's store)
    but the lock."""
    state = json.loads((root / STATE_FILE).read_text())
    state.pop("generation")
    files: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(directory, d)))]:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if relative in (STATE_FILE, LOCK_FILE):
                continue
            files[relative] = _content(path)
    return {"state": state, "files": files}


def _content(path: Path) -> str:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"-> {os.readlink(path)}"
    if not stat.S_ISREG(info.st_mode):  # a device node: never opened
        return f"node {stat.filemode(info.st_mode)} {os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    return path.read_text(errors="replace")


def copy_host(source: Path, target: Path) -> None:
    """A copy of a simulated host, device nodes included (the sim makes them when it runs as root)."""

    def copy(src: str, dst: str) -> None:
        info = os.lstat(src)
        if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
            os.mknod(dst, info.st_mode, info.st_rdev)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=copy)


def differences(got: Any, want: Any, path: str = "", limit: int = 8) -> list[str]:
    """Where two snapshots differ, as `path: got != want` lines (at most `limit`), for a failure message that
    says what an interrupted apply left behind."""
    if isinstance(got, dict) and isinstance(want, dict):
        found: list[str] = []
        for key in sorted(set(got) | set(want), key=str):
            if key not in got or key not in want:
                found.append(f"{path}/{key}: {'missing' if key not in got else 'extra'}")
            else:
                found += differences(got[key], want[key], f"{path}/{key}", limit)
        return found[:limit]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True))
                for d in differences(g, w, f"{path}[{i}]", limit)][:limit]
    return [] if got == want else [f"{path}: {got!r:.120} != {want!r:.120}"]
