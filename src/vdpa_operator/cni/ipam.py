"""Where a pod's addresses on a vdpa-cni network come from; every source gives one `IpamResult`.

- `ipam.type` set: `DelegatedIpam` runs that IPAM plugin from CNI_PATH (SPEC §4), any CNI version
  (`ipam_delegate.py`).
- `ipam` empty, on an OVN-Kubernetes cluster: `from_pod_networks` reads the addresses OVN-K allocated from the pod's
  `k8s.ovn.org/pod-networks` annotation; `node_subnet` reads the node's subnet from `k8s.ovn.org/node-subnets`
  (`ipam_ovn.py`).
- `ipam` empty otherwise: `NodeIpam`, the node's own allocator over a lease store on disk (`ipam_node.py`).

`parse_ipam_result` reads an IPAM plugin's (or a prevResult's) addresses, routes and DNS in any CNI version
(`ipam_result.py`).
"""

from vdpa_operator.cni.ipam_delegate import DEFAULT_TIMEOUT, DelegatedIpam, VersionCache
from vdpa_operator.cni.ipam_node import NodeIpam, ovn_mac
from vdpa_operator.cni.ipam_ovn import NODE_SUBNETS, POD_NETWORKS, NotAnnotated, from_pod_networks, node_subnet
from vdpa_operator.cni.ipam_result import DnsConfig, IpamResult, IpConfig, RouteConfig, parse_ipam_result

__all__ = [
    "DEFAULT_TIMEOUT",
    "NODE_SUBNETS",
    "POD_NETWORKS",
    "DelegatedIpam",
    "DnsConfig",
    "IpConfig",
    "IpamResult",
    "NodeIpam",
    "NotAnnotated",
    "RouteConfig",
    "VersionCache",
    "from_pod_networks",
    "node_subnet",
    "ovn_mac",
    "parse_ipam_result",
]
