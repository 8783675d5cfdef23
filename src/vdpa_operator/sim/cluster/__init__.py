"""The simulated cluster on one machine (`vdpactl sim up|status|down`): the embedded API server, and per node a
network namespace, a simulated ConnectX-6 Dx host, its own Open vSwitch and a kubelet, joined by one flat L2 pod
network; deploy/ applied as in a real cluster.

Modules: `layout` (names and paths from the state dir), `record` (what was made), `processes` (start, stop,
strays), `network` (namespaces, the wire), `ovs` (a node's OVS), `nodes` (a node's set-up), `forwarder` (the API
server inside the node namespaces), `manifests` (labels, deploy/), `apiclient`, and the three commands:
`bringup`, `status`, `teardown`.
"""
