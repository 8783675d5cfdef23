"""The annotations Multus and the network-attachment-definition spec (k8snetworkplumbingwg) give meaning to, one
name each for the operator (networks, injector), the simulated kubelet (as Multus) and `vdpactl verify`."""

from __future__ import annotations

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
"""A pod's additional networks: `[ns/]name[@if]` comma list, or a JSON list of {name, namespace, interface}."""
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
"""A pod's cluster-default network replaced by this NAD (`[ns/]name`)."""
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
"""A NAD's device resource (`openshift.io/mlxnics`): what a pod on it needs allocated."""
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
"""What Multus writes on a pod: each attachment's interface, IPs, MAC and device-info."""
