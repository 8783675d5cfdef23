"""The simulated cluster's kubelet, one piece at a time: `devicemanager` (kubelet's side of the device plugin
API) so far."""
