"""The seed scenario as tests see it, read from `examples/` — the same files `make demo` uses, so the tests
and the demo cannot drift apart."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from vdpa_operator import yamlio
from vdpa_operator.api.decoding import decode
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import SriovNetworkNodeState

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEED_POLICY_FILE = EXAMPLES / "vdpa-policy.yaml"
NODE_STATES_FILE = EXAMPLES / "node-states.yaml"
NODES_FILE = EXAMPLES / "nodes.yaml"
SEED_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: vdpa-pod1
  namespace: vdpa
  annotations:
    v1.multus-cni.io/default-network: kube-system/ovn-kubernetes-a
spec:
  containers:
  - name: vdpa-pod
    image: networkstatic/iperf3
    imagePullPolicy: IfNotPresent
    securityContext:
      privileged: true
    command:
      - sleep
      - "3600"
"""
"""The seed page's pod, verbatim (the page has no file of it in examples/)."""


def raw_documents(path: Path) -> list[Any]:
    return [doc.value for doc in yamlio.parse_documents(path.read_text(), str(path))]


def seed_policy_raw() -> dict[str, Any]:
    """The seed page's policy as written (a fresh copy each call)."""
    [raw] = raw_documents(SEED_POLICY_FILE)
    return copy.deepcopy(raw)


def example_node_states() -> tuple[SriovNetworkNodeState, ...]:
    states = (decode(raw).obj for raw in raw_documents(NODE_STATES_FILE))
    return tuple(s for s in states if isinstance(s, SriovNetworkNodeState))


def example_nodes() -> tuple[Node, ...]:
    nodes = (decode(raw).obj for raw in raw_documents(NODES_FILE))
    return tuple(n for n in nodes if isinstance(n, Node))
