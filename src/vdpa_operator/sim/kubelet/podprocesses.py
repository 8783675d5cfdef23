"""The seam between the kubelet and its exec/log server (`streaming.py`): what runs where, by
namespace/pod/container. The kubelet writes an entry when a container starts and drops the pod when it goes;
the streaming server reads it to run a command where the container runs (its network namespace, and its mount
namespace through `pid`) with its environment, or to serve its log file. `locate` answers the streaming
server's `PodProcesses` protocol; embedding it is `streaming.start(kubelet.processes, token, "127.0.0.1",
settings.streaming_port)` in `Kubelet.run`, with the API server's kubelet-client token."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vdpa_operator.sim.kubelet.streaming import ContainerView


@dataclass
class ContainerProcess:
    namespace: str
    pod: str
    container: str
    netns: str
    """The network namespace's path (the pod's, or the node's for hostNetwork)."""
    log_file: Path
    env: dict[str, str]
    argv: list[str]
    pid: int | None = None
    """The running process (it is inside the container's private mount namespace), None between restarts."""
    restarts: int = 0
    cwd: Path | None = None


@dataclass
class PodProcesses:
    containers: dict[tuple[str, str, str], ContainerProcess] = field(default_factory=dict)

    def put(self, process: ContainerProcess) -> None:
        self.containers[(process.namespace, process.pod, process.container)] = process

    def lookup(self, namespace: str, pod: str, container: str | None = None) -> ContainerProcess | None:
        """The named container, or with `container` None the pod's first (kubectl's default container)."""
        if container is not None:
            return self.containers.get((namespace, pod, container))
        found = [p for (ns, name, _), p in self.containers.items() if (ns, name) == (namespace, pod)]
        return found[0] if found else None

    def locate(self, namespace: str, pod: str, container: str) -> ContainerView | None:
        """The streaming server's question: where to run a command in this container, where its log is."""
        found = self.lookup(namespace, pod, container)
        if found is None:
            return None
        return ContainerView(Path(found.netns), found.log_file, dict(found.env), found.cwd,
                                 running=found.pid is not None, pid=found.pid)

    def drop(self, namespace: str, pod: str) -> None:
        for key in [k for k in self.containers if k[:2] == (namespace, pod)]:
            del self.containers[key]
