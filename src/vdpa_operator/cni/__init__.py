"""vdpa-cni: the CNI plugin that puts a VF's vDPA device into a pod and its representor on OVS."""
