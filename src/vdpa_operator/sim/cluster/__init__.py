"""The simulated cluster on one machine (`vdpactl sim up|status|down`): the embedded API server, a controller
manager, and per node a network namespace, a simulated ConnectX-6 Dx host, its own Open vSwitch and a kubelet,
joined by one flat L2 pod network; deploy/ applied as in a real cluster.

Modules: `layout` (names and paths, from the state dir), `record` (what was made), `processes` (start, stop,
strays), `network` (namespaces, the wire), `ovs` (a node's OVS), `nodes` (a node's set-up), `forwarder` (TCP
relays between namespaces), `workloads` and `controllermanager` (DaemonSets and Deployments become pods),
`manifests` (labels, facts, deploy/), `apiclient`, and the three commands: `bringup`, `status`, `teardown`.

What a node offers its kubelet (`--root`, `--node-netns`, `--pod-cidr`, `--cni-bin-dir`, `--streaming-port`,
`--container-env`, `--kubelet-token-file`, `--webhook-service`; nodes.kubelet_argv):
- `--root` is the node's `/`: the simulated host's `sys/`, `dev/` and `state.json` (components reach it with
  `--host sim --sim-root <root> --sim-netns <node netns>`), OVS's socket at `var/run/openvswitch/db.sock`
  (`--ovsdb unix:<root>/var/run/openvswitch/db.sock`), the CNI bin dir `opt/cni/bin` (= `--cni-bin-dir`). Every
  container and CNI plugin gets these as `VDPA_HOST=sim`, `VDPA_SIM_ROOT`, `VDPA_SIM_NETNS`, `VDPA_OVSDB`
  (`--container-env`), so deploy/'s pods act on the node's simulated host, never on this machine.
- kubectl exec/logs: the API server shows each kubelet its kubelet-client token (`<state>/kubelet-token`, 0600).
- The API server is at the kubeconfig's URL (`https://127.0.0.1:<port>`) both on the machine and inside every
  node namespace (a relay), so hostNetwork pods use `KUBERNETES_SERVICE_HOST=127.0.0.1` and that port. A pod
  in a namespace of its own needs a relay of its own (`forwarder --listen <pod netns>=127.0.0.1:<port>
  --connect 127.0.0.1:<port>`).
- The API server calls a webhook Service at the machine's address that ConfigMap kube-system/vdpa-sim-cluster
  names (`webhookServices`, e.g. operator-webhook-service → 127.0.0.1:W; the kubelets' `--webhook-service`): the
  kubelet running the Service's pod relays it into the pod's netns, to the targetPort (kubelet/webhookrelay.py).
- Pod network 10.128.0.0/16, node i's /24 10.128.i.0/24 (`--pod-cidr`, and the Node's
  `k8s.ovn.org/node-subnets`); br-int's own port holds the node's address 10.128.i.1/16 and the node forwards,
  so a pod addressed from its node's /24 reaches every other pod through its gateway, the node's address.
- `down` removes every namespace named `<node netns>-…` or `vsim<hash>-…` (the kubelet names pods' so), stops the
  kubelets first (SIGTERM, 25 s), then every process that descended from one, or sits in one of the cluster's
  namespaces.
"""
