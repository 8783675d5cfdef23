"""How long one full policy sync takes on a large cluster: 5,000 nodes × 50 policies, goal under 1 s.

Each node reports two ConnectX-6 Dx PFs (four PCI layouts and naming schemes across the fleet, alt names
included); the policies mix node selectors (all SR-IOV nodes, a rack, a zone), nicSelectors (vendor/device,
root devices, pfNames with VF partitions, alt names), priorities with ties, shared resource names, vfio-pci,
and virtio/vhost vDPA. Only `render_cluster` is timed; building the input is not.

    .venv/bin/python bench/render.py [--nodes N] [--policies N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

from common import verdict

from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import SriovNetworkNodePolicy, SriovNetworkNodeState
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.render.policy_sync import render_cluster

NAMESPACE = "openshift-sriov-network-operator"
GOAL_SECONDS = 1.0
LAYOUTS = [  # (PCI bus, netdev name prefix, alt name prefix)
    ("3b", "ens1f", "enp59s0f"),
    ("65", "ens2f", "enp101s0f"),
    ("98", "ens3f", "enp152s0f"),
    ("d8", "ens4f", "enp216s0f"),
]


def make_node(index: int) -> Node:
    labels = {
        "kubernetes.io/hostname": f"worker-{index:04d}",
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/worker": "",
        "topology.kubernetes.io/zone": f"zone-{index % 3}",
        "rack": f"rack-{index % 20:02d}",
    }
    if index % 10:
        labels["feature.node.kubernetes.io/network-sriov.capable"] = "true"
    return Node.model_validate({"metadata": {"name": f"worker-{index:04d}", "labels": labels}}, by_name=False)


def make_state(index: int, distinct: bool) -> SriovNetworkNodeState:
    """`distinct`: give every PF a node-unique extra alt name, so no two nodes render alike (no reuse)."""
    bus, prefix, alt_prefix = LAYOUTS[index % len(LAYOUTS)]
    interfaces = []
    for port in (0, 1):
        pci = f"0000:{bus}:00.{port}"
        interfaces.append({
            "name": f"{prefix}{port}np{port}",
            "altNames": [f"{alt_prefix}{port}np{port}", *([f"uplink{index}-{port}"] if distinct else [])],
            "pciAddress": pci,
            "vendor": "15b3",
            "deviceID": "101d",
            "driver": "mlx5_core",
            "mac": f"0c:42:a1:{index // 256 % 256:02x}:{index % 256:02x}:{port:02x}",
            "mtu": 1500,
            "linkSpeed": "100000 Mb/s",
            "linkType": "ETH",
            "linkAdminState": "up",
            "eSwitchMode": "legacy",
            "totalvfs": 16,
        })
    return SriovNetworkNodeState.model_validate({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodeState",
        "metadata": {"name": f"worker-{index:04d}", "namespace": NAMESPACE},
        "status": {"interfaces": interfaces, "syncStatus": "Succeeded"},
    }, by_name=False)


def make_policy(index: int) -> SriovNetworkNodePolicy:
    bus, prefix, alt_prefix = LAYOUTS[(index // 4) % len(LAYOUTS)]
    node_selectors: list[dict[str, str]] = [
        {"feature.node.kubernetes.io/network-sriov.capable": "true"},
        {"rack": f"rack-{index % 20:02d}"},
        {
            "topology.kubernetes.io/zone": f"zone-{index % 3}",
            "feature.node.kubernetes.io/network-sriov.capable": "true",
        },
    ]
    first = (index // 16) * 4
    partition = index % 4 == 2  # VF partitions win (lowest priority numbers, some tied) and so survive the merge
    nic_selectors: list[dict[str, Any]] = [
        {"vendor": "15b3", "deviceID": "101d"},
        {"vendor": "15b3", "rootDevices": [f"0000:{bus}:00.0"]},
        {"pfNames": [f"{prefix}0np0#{first}-{first + 3}", f"{prefix}1np1#{first}-{first + 3}"]},  # partition
        {"vendor": "15b3", "pfNames": [f"{alt_prefix}1np1"]},
    ]
    spec: dict[str, Any] = {
        "resourceName": f"res{index % 15}",
        "nodeSelector": node_selectors[index % len(node_selectors)],
        "priority": 1 + (index // 4) % 3 if partition else 10 + (index * 7) % 90,
        "numVfs": 16 if partition else 4 + index % 8,
        "nicSelector": nic_selectors[index % len(nic_selectors)],
        "deviceType": "vfio-pci" if index % 5 == 0 else "netdevice",
        "isRdma": index % 7 == 0,
        "mtu": 9000 if index % 6 == 0 else 1500,
    }
    if spec["deviceType"] == "netdevice" and index % 3:
        spec.update(eSwitchMode="switchdev", vdpaType="virtio" if index % 2 else "vhost")
    return SriovNetworkNodePolicy.model_validate({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": f"policy-{index:02d}", "namespace": NAMESPACE},
        "spec": spec,
    }, by_name=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print the 25 most expensive functions")
    args = parser.parse_args()

    nodes = [make_node(i) for i in range(args.nodes)]
    policies = [make_policy(i) for i in range(args.policies)]
    for distinct in (False, True):
        states = [make_state(i, distinct) for i in range(args.nodes)]
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = render_cluster(policies, nodes, states, namespace=NAMESPACE, nics=DEFAULT_SUPPORTED_NICS)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started

        if not distinct:
            interfaces = sum(len(s.spec.interfaces) for s in result.node_states)
            groups = sum(len(i.vf_groups) for s in result.node_states for i in s.spec.interfaces)
            enabled = sum(1 for v in result.node_labels.values() if v == "Enabled")
            print(f"rendered {len(result.node_states)} node states ({interfaces} PFs, {groups} VF groups), "
                  f"{len(result.config_map.data)} device-plugin configs, {enabled} nodes Enabled")
        what = "every PF alt name node-unique: no node spec reused" if distinct else "4 NIC layouts across the fleet"
        print(f"render: {args.nodes} nodes x {args.policies} policies in {elapsed:.2f} s "
              f"(goal < {GOAL_SECONDS:g} s: {verdict(elapsed < GOAL_SECONDS)}; {what})")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

if __name__ == "__main__":
    main()
