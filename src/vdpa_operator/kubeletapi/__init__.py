"""Kubelet's gRPC APIs as generated stubs: `deviceplugin` (package `v1beta1`: Registration, DevicePlugin) and
`pluginregistration` (the plugin watcher's Registration). Only the `.proto` files are written by hand; the
`*_pb2*` modules come from `scripts/gen-protos` and are never edited."""
