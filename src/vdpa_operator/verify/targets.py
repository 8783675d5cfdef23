"""API objects → what verify checks: the pods that hold a vDPA resource, the VF each was given, and per node its
model (if simulated), its VFs as the NodeState reports them, and its config-daemon pod. Pure: dicts in, values
out; `cluster_view` does the reading.

Which VF a pod got, in this order:
1. the pod's `k8s.v1.cni.cncf.io/network-status` annotation: Multus copies the device plugin's device-info file
   into the entry of the interface (`device-info.vdpa.pci-address`). It is per interface (it says which VF is
   eth0), readable through the API without running anything in the pod, and written on every cluster with
   Multus ≥ 3.7 and a device plugin that writes device-info files;
2. else `env` in the pod: `PCIDEVICE_<PREFIX>_<RESOURCE>` that the device plugin's Allocate sets (every pod
   holding the resource has it, but it names all of the container's devices, not which interface is which);
3. the device-info file itself is not used: it lives on the host (`/var/run/k8s.cni.cncf.io/devinfo/dp/`), not in
   the pod, and is named by the very device ID we are looking for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator import bounded
from vdpa_operator.api.multus import NETWORK_STATUS_ANNOTATION
from vdpa_operator.verify.model import SimModel, sim_model

INTERFACE = "eth0"
CONFIG_DAEMON_LABEL = ("app.kubernetes.io/name", "vdpa-config-daemon")
"""The label of deploy/config-daemon.yaml's pods (its DaemonSet's selector)."""
CONFIG_DAEMON_CONTAINER = "config-daemon"
VIRTIO = "virtio"


@dataclass(frozen=True, slots=True)
class PodTarget:
    namespace: str
    name: str
    node: str
    phase: str
    ips: tuple[str, ...]
    resources: tuple[str, ...]
    """The vDPA resources the pod requests (`openshift.io/mlxnics`)."""
    allocated: tuple[str, ...] = ()
    """VF PCI addresses from the network-status annotation (empty: not there, ask the pod's env)."""
    mac: str = ""
    """eth0's MAC from the annotation ("" : read it in the pod)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    model: SimModel | None
    vfs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """VF PCI address → its entry in the NodeState status (`vdpaType`, `driver`, …)."""
    daemon_pod: str = ""
    """The node's config-daemon pod ("" : none found)."""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def vdpa_resources(node_states: Iterable[Mapping[str, Any]], prefix: str) -> set[str]:
    """Resources some NodeState's spec gives `vdpaType: virtio` (the device plugin advertises them as vDPA).
    A `vhost` VF gives the pod a `/dev/vhost-vdpa-N` device and no netdev: the seed's checks are not about it."""
    found = set()
    for state in node_states:
        for interface in (state.get("spec") or {}).get("interfaces") or []:
            for group in interface.get("vfGroups") or []:
                if group.get("vdpaType") == VIRTIO and group.get("resourceName"):
                    found.add(f"{prefix}/{group['resourceName']}")
    return found


def requested(pod: Mapping[str, Any]) -> set[str]:
    """Every resource a container of the pod requests or limits."""
    names: set[str] = set()
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            names.update((resources.get(part) or {}).keys())
    return names


def network_status_entry(pod: Mapping[str, Any], interface: str = INTERFACE) -> Mapping[str, Any] | None:
    """The annotation's entry of `interface` (else the default network's); None when there is none."""
    text = (_meta(pod).get("annotations") or {}).get(NETWORK_STATUS_ANNOTATION)
    if not text:
        return None
    try:
        parsed = bounded.loads_json(text, f"Pod {_meta(pod).get('name')} annotation {NETWORK_STATUS_ANNOTATION}")
    except bounded.ParseError:
        return None  # Multus wrote something else; the env fallback still finds the VF
    entries: list[dict[str, Any]] = [e for e in parsed if isinstance(e, dict)] if isinstance(parsed, list) else []
    for entry in entries:
        if entry.get("interface") == interface:
            return entry
    return next((e for e in entries if e.get("default") is True), None)


def annotated_device(entry: Mapping[str, Any] | None) -> str:
    """The VF PCI address in an entry's device-info (`vdpa` or `pci` section), "" when none."""
    info = (entry or {}).get("device-info") or {}
    section = info.get(info.get("type", "")) if isinstance(info, dict) else None
    address = section.get("pci-address") if isinstance(section, dict) else None
    return address if isinstance(address, str) else ""


def pod_target(pod: Mapping[str, Any], vdpa: set[str]) -> PodTarget:
    status = pod.get("status") or {}
    ips = tuple(i.get("ip", "") for i in status.get("podIPs") or [] if i.get("ip")) or (
        (status["podIP"],) if status.get("podIP") else ())
    entry = network_status_entry(pod)
    address = annotated_device(entry)
    mac = (entry or {}).get("mac")
    return PodTarget(
        namespace=_meta(pod).get("namespace", ""), name=_meta(pod).get("name", ""),
        node=(pod.get("spec") or {}).get("nodeName", ""), phase=status.get("phase", ""), ips=ips,
        resources=tuple(sorted(requested(pod) & vdpa)), allocated=(address,) if address else (),
        mac=mac if isinstance(mac, str) else "")


def select_pods(pods: Iterable[Mapping[str, Any]], vdpa: set[str], names: Sequence[str] = ()) -> list[PodTarget]:
    """The named pods (in the order given), or every pod holding a vDPA resource that has not finished."""
    targets = [pod_target(pod, vdpa) for pod in pods]
    if names:
        by_name = {t.name: t for t in targets}
        return [by_name[name] for name in names if name in by_name]
    finished = {"Succeeded", "Failed"}
    return sorted((t for t in targets if t.resources and t.phase not in finished), key=lambda t: t.key)


def node_view(name: str, node: Mapping[str, Any] | None, node_state: Mapping[str, Any] | None,
              daemon_pods: Iterable[Mapping[str, Any]]) -> NodeView:
    vfs = {}
    for interface in ((node_state or {}).get("status") or {}).get("interfaces") or []:
        for vf in interface.get("Vfs") or []:
            if vf.get("pciAddress"):
                vfs[vf["pciAddress"]] = vf
    daemon = next((_meta(p).get("name", "") for p in daemon_pods
                   if (p.get("spec") or {}).get("nodeName") == name
                   and (p.get("status") or {}).get("phase") == "Running"), "")
    return NodeView(name=name, model=sim_model(node) if node else None, vfs=vfs, daemon_pod=daemon)
