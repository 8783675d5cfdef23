"""The small kubelet's one settings object: read from the command line once, frozen, and the one place that
says where each of its files lives under the node's `--root` (two simulated nodes on one machine each have
their own root, so nothing of one node is seen by the other)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    heartbeat: float = 10.0
    """Seconds between Lease renewals and Ready heartbeats (kubelet's nodeStatusUpdateFrequency is 10 s)."""
    lease_seconds: int = 40
    """The Lease's leaseDurationSeconds, as kubelet's default."""
    restart_backoff: float = 1.0
    """First delay before a container is started again; doubled per restart, up to `restart_backoff_max`."""
    restart_backoff_max: float = 10.0
    """kubelet's is 300 s: a simulated cluster should recover in seconds."""
    stop_grace_max: float = 10.0
    """A container's SIGTERM→SIGKILL wait is the pod's terminationGracePeriodSeconds, at most this."""
    schedule_interval: float = 0.5
    """How often the scheduler looks at pending pods again (besides every pod/node event)."""
    volume_refresh: float = 2.0
    """How often running pods' configMap and secret volumes are brought up to date with their objects
    (kubelet's takes its sync period plus its cache's TTL, about a minute: a simulated cluster follows faster)."""


@dataclass(frozen=True)
class KubeletSettings:
    node_name: str
    kubeconfig: Path
    root: Path
    node_netns: str
    pod_cidr: str | None = None
    cni_bin_dir: Path = Path("/opt/cni/bin")
    streaming_port: int = 0
    """0: a free port (several kubelets share this machine's 127.0.0.1)."""
    multus_namespace: str = "kube-system"
    """Where an unqualified name in v1.multus-cni.io/default-network is looked up (Multus's own namespace)."""
    schedule: bool = True
    """Run the minimal scheduler in this kubelet too (several kubelets may: the kube-scheduler Lease picks one)."""
    venv_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)
    """Containers' command[0] is looked up here first: the virtualenv stands for the image."""

    @property
    def image_paths(self) -> tuple[Path, ...]:
        """What the image is on this machine: the virtualenv, and the source tree an editable install runs from.
        A container's volume may cover them (deploy/'s config daemon mounts an emptyDir on /tmp, and a checkout
        may live under /tmp): they stay visible in every container."""
        import vdpa_operator

        source = Path(vdpa_operator.__file__).resolve().parents[1]
        venv = self.venv_bin.parent
        return (venv,) if source.is_relative_to(venv) else (venv, source)
    container_env: tuple[tuple[str, str], ...] = ()
    """Variables every container and CNI plugin of this node gets, over the pod's own: how a simulated node
    points deploy/'s components at its simulated host (`VDPA_HOST=sim`, `VDPA_SIM_ROOT`, …) and never at this
    machine's /sys."""
    kubelet_token_file: Path | None = None
    """The API server's kubelet-client token (sim/apiserver/proxy.py): the exec/log server answers only it."""
    webhook_services: tuple[tuple[str, str], ...] = ()
    """Service `namespace/name` → the machine's `host:port` where the API server calls it: relayed into the pod
    that serves it when that pod runs here (the relay kube-proxy would be)."""
    timing: Timing = field(default_factory=Timing)

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "var/lib/kubelet"

    @property
    def device_plugin_dir(self) -> Path:
        return self.kubelet_dir / "device-plugins"

    @property
    def plugins_registry(self) -> Path:
        return self.kubelet_dir / "plugins_registry"

    @property
    def pods_dir(self) -> Path:
        return self.kubelet_dir / "pods"

    @property
    def logs_dir(self) -> Path:
        return self.root / "var/log/pods"

    @property
    def status_file(self) -> Path:
        """What this kubelet runs, for people and tests: pods, their netns, devices, containers' PIDs."""
        return self.kubelet_dir / "sim-status.json"

    def node_path(self, host_path: str) -> Path:
        """Where a path of the node's filesystem is on this machine: under the root, except the CNI bin
        directory, which is `--cni-bin-dir`. A path already under the root (a node process run outside a pod,
        which names the machine's paths) is itself."""
        if host_path.rstrip("/") == "/opt/cni/bin":
            return self.cni_bin_dir
        if Path(host_path).is_relative_to(self.root):
            return Path(host_path)
        return self.root / host_path.lstrip("/")
