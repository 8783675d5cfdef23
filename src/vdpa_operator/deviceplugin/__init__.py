"""The kubelet device plugin (`vdpactl device-plugin`): VFs with vDPA devices as extended resources.

`config` (the resource list), `devices` (what a scan found), `pools` (selection and health) and `allocation`
(what a container gets) are pure; `discovery` reads the node through the Host port; `server` speaks kubelet's
gRPC API; `service` keeps servers, config, node and kubelet in step.
"""
