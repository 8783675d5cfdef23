"""How a process sees the node's filesystem: a private mount namespace with bind mounts, entered together with
a network namespace, then exec. Containers get their volumes this way (a hostPath `P` is `<root>/P`, so two
simulated nodes on one machine never share a host path), and the CNI plugins the node's view of the
directories they share with node daemons (the CNI server's socket, device-info files).

The namespace is a slave of the machine's: what the container mounts stays inside, and what the machine
unmounts (`ip netns del` of another pod's namespace) goes from the container's copy too, so no container pins
another pod's network namespace.

Mount points that do not exist are created (directories, or empty files for a file source) on this machine's
filesystem, since mkdir is not namespaced; what is mounted on them is seen only inside the namespace."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SHARED_WITH_THE_MACHINE = ("/sys", "/dev", "/proc", "/lib/modules", "/var/run/netns", "/run/netns")
"""Host paths that are the machine's own on every simulated node: the kernel's (one kernel for all nodes) and
the named network namespaces (a pod's CNI_NETNS must resolve in every node daemon)."""
NODE_VIEW = ("/var/run/vdpa-cni", "/var/run/k8s.cni.cncf.io", "/var/lib/cni", "/var/run/openvswitch")
"""Node directories a CNI plugin reads or writes: where node daemons (hostPath volumes) meet the runtime."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


def shared(host_path: str) -> bool:
    path = "/" + host_path.strip("/")
    return any(path == p or path.startswith(p + "/") for p in SHARED_WITH_THE_MACHINE)


def node_view(root: Path) -> list[Mount]:
    """The node's directories of `NODE_VIEW` (created under `root`), mounted where the node has them."""
    mounts = []
    for path in NODE_VIEW:
        source = root / path.lstrip("/")
        source.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(source, path))
    return mounts


def entering(netns: str, mounts: Sequence[Mount], argv: Sequence[str], *,
             keep_visible: Sequence[Path] = ()) -> list[str]:
    """The argv that runs `argv` in network namespace `netns` (a path) with `mounts` in a private mount
    namespace: nsenter, unshare, a shell that mounts, then exec. A path of `keep_visible` (the image: the
    virtualenv the command runs from) that a mount would cover is bound aside first and back on top after."""
    lines = ["set -e"]
    covered = [p for p in keep_visible if any(_covers(m.target, p) for m in mounts)]
    stage = '"/dev/shm/.vdpa-sim-image-$$"'
    for index, path in enumerate(covered):
        lines.append(f"mkdir -p {stage}/{index}; mount --bind {shlex.quote(str(path))} {stage}/{index}")
    for mount in mounts:
        source, target = shlex.quote(str(mount.source)), shlex.quote(mount.target)
        if mount.source.is_dir():
            lines.append(f"mkdir -p {target}")
        else:
            lines.append(f"mkdir -p {shlex.quote(str(Path(mount.target).parent))}; [ -e {target} ] || : > {target}")
        lines.append(f"mount --bind {source} {target}")
        if mount.read_only:
            lines.append(f"mount -o remount,bind,ro {target}")
    for index, path in enumerate(covered):
        target = shlex.quote(str(path))
        lines.append(f"mkdir -p {target}; mount --bind {stage}/{index} {target}; umount {stage}/{index}")
        lines.append(f"rmdir {stage}/{index}")  # rmdir, never rm -r: it cannot take what a bind still shows
    if covered:
        lines.append(f"rmdir {stage}")
    lines.append('exec "$@"')
    return ["nsenter", f"--net={netns}", "--", "unshare", "--mount", "--propagation", "slave", "--",
            "/bin/sh", "-c", "\n".join(lines), "sh", *argv]


def _covers(target: str, path: Path) -> bool:
    """Whether a mount on `target` hides `path`."""
    return path == Path(target) or path.is_relative_to(target)
