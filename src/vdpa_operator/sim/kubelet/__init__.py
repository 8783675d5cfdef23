"""The simulated cluster's kubelet (`vdpactl sim kubelet`), one module per idea:

- `service`: the loop: Node, heartbeats, pods of this node started and stopped, the scheduler, a status file;
- `nodestatus`: Node registration, Lease and Ready, devices as capacity/allocatable;
- `devicemanager`: kubelet's side of the device plugin API over real gRPC; `assignments`: which pod holds
  which device (checkpointed);
- `scheduler` (+ `quantity`): binds pending pods to nodes they fit, through pods/binding;
- `pods`: one pod from devices and sandbox to containers, status and teardown;
- `multus` (+ `cnibin`): the default network's CNI chain as Multus runs it, `ovn-k8s-cni-overlay` served by
  vdpa-cni;
- `containers`, `volumes`, `mounts`: a container as a host process in its netns with its volumes bind-mounted
  from the node's root in a private mount namespace;
- `serviceproxy`: the API server's address served inside pod and node namespaces; `webhookrelay`: webhook
  Services the API server calls on this machine, relayed into the pod serving them;
- `podprocesses`: what runs where, for the exec/log server (`streaming`).
"""
