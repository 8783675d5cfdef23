"""How verify knows a node is simulated, and what its model stands for — through the API only.

The contract: the simulated cluster's kubelet sets, on each Node it registers, the annotation
`vdpa.sim/model` whose value is a JSON object

    {"nic": "ConnectX-6 Dx", "vdpaNetdevDriver": "veth", "datapath": "ovs"}

- `nic`: the NIC the simulated host models;
- `vdpaNetdevDriver`: the driver `ethtool -i` really reports for a pod's vDPA netdev on that node (the model's
  VF → vDPA device → virtio_vdpa → virtio_net netdev is, in the kernel, one end of a veth pair);
- `datapath`: the `dp:` the node's OVS really reports for its flows (a userspace datapath, `ovs`, offloads
  nothing to tc).

A real kubelet never sets a `vdpa.sim/` annotation, so on a real cluster every mismatch is a failure. Where the
annotation is present, a driver or flows check whose observation is exactly what the model says the kernel shows
is `simulated` (not `pass`), printed with the model; anything else still fails. The per-VF part of the model
(the VF's vDPA type, hence the vdpa bus driver it is bound to) comes from the node's SriovNetworkNodeState status,
which the config daemon reports from the simulated host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vdpa_operator.errors import VdpaOperatorError

SIM_MODEL_ANNOTATION = "vdpa.sim/model"


class ModelAnnotationError(VdpaOperatorError, ValueError):
    """A node's `vdpa.sim/model` annotation is not the JSON object verify reads."""


@dataclass(frozen=True, slots=True)
class SimModel:
    nic: str
    vdpa_netdev_driver: str
    datapath: str

    def annotation(self) -> str:
        """The annotation value that stands for this model (what the simulated kubelet writes)."""
        return json.dumps({"nic": self.nic, "vdpaNetdevDriver": self.vdpa_netdev_driver, "datapath": self.datapath})

    def driver_view(self, address: str, vdpa_type: str, vdpa_driver: str, node: str) -> str:
        return (f"simulated {self.nic}: VF {address} has vDPA device vdpa:{address} of type {vdpa_type}, bound to "
                f"{vdpa_driver} (NodeState {node} status); its virtio_net netdev is a {self.vdpa_netdev_driver} "
                f"here, so ethtool cannot show driver virtio_net, bus-info vdpa:{address}")

    def flows_view(self) -> str:
        return (f"simulated {self.nic}: OVS runs a userspace datapath (dp:{self.datapath}), which offloads nothing; "
                "on the NIC these flows are offloaded:yes, dp:tc")


def sim_model(node: Mapping[str, Any]) -> SimModel | None:
    """The node's model, None for a real node (no `vdpa.sim/model` annotation)."""
    metadata = node.get("metadata") or {}
    text = (metadata.get("annotations") or {}).get(SIM_MODEL_ANNOTATION)
    if text is None:
        return None
    where = f"Node {metadata.get('name', '?')} annotation {SIM_MODEL_ANNOTATION}"
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ModelAnnotationError(f"{where}: not JSON ({err}); expected {_EXAMPLE}") from None
    fields = {"nic": "nic", "vdpaNetdevDriver": "vdpa_netdev_driver", "datapath": "datapath"}
    if not isinstance(value, dict) or not all(isinstance(value.get(key), str) and value[key] for key in fields):
        raise ModelAnnotationError(f"{where}: {text!r} lacks a non-empty string {', '.join(fields)}; "
                                   f"expected {_EXAMPLE}")
    return SimModel(**{name: value[key] for key, name in fields.items()})


_EXAMPLE = SimModel("ConnectX-6 Dx", "veth", "ovs").annotation()
