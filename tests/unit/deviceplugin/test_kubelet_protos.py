"""The committed gRPC stubs are what their .proto files generate, and those are kubelet's wire format: package
names, full method names, message fields and their numbers as in k8s.io/kubelet's api.proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from vdpa_operator.kubeletapi.deviceplugin import api_pb2 as dp
from vdpa_operator.kubeletapi.pluginregistration import api_pb2 as reg

ROOT = Path(__file__).parents[3]

# message → [(field, number, repeated)] from kubelet's v1beta1 and pluginregistration v1 api.proto
KUBELET_MESSAGES = {
    dp: {
        "DevicePluginOptions": [("pre_start_required", 1, False), ("get_preferred_allocation_available", 2, False)],
        "RegisterRequest": [("version", 1, False), ("endpoint", 2, False), ("resource_name", 3, False),
                            ("options", 4, False)],
        "Empty": [],
        "ListAndWatchResponse": [("devices", 1, True)],
        "TopologyInfo": [("nodes", 1, True)],
        "NUMANode": [("ID", 1, False)],
        "Device": [("ID", 1, False), ("health", 2, False), ("topology", 3, False)],
        "PreStartContainerRequest": [("devices_ids", 1, True)],
        "PreStartContainerResponse": [],
        "PreferredAllocationRequest": [("container_requests", 1, True)],
        "ContainerPreferredAllocationRequest": [("available_deviceIDs", 1, True), ("must_include_deviceIDs", 2, True),
                                                ("allocation_size", 3, False)],
        "PreferredAllocationResponse": [("container_responses", 1, True)],
        "ContainerPreferredAllocationResponse": [("deviceIDs", 1, True)],
        "AllocateRequest": [("container_requests", 1, True)],
        "ContainerAllocateRequest": [("devices_ids", 1, True)],
        "CDIDevice": [("name", 1, False)],
        "AllocateResponse": [("container_responses", 1, True)],
        "ContainerAllocateResponse": [("envs", 1, True), ("mounts", 2, True), ("devices", 3, True),
                                      ("annotations", 4, True), ("cdi_devices", 5, True)],
        "Mount": [("container_path", 1, False), ("host_path", 2, False), ("read_only", 3, False)],
        "DeviceSpec": [("container_path", 1, False), ("host_path", 2, False), ("permissions", 3, False)],
    },
    reg: {
        "PluginInfo": [("type", 1, False), ("name", 2, False), ("endpoint", 3, False),
                       ("supported_versions", 4, True)],
        "RegistrationStatus": [("plugin_registered", 1, False), ("error", 2, False)],
        "RegistrationStatusResponse": [],
        "InfoRequest": [],
    },
}
KUBELET_METHODS = {
    "v1beta1.Registration": ["Register"],
    "v1beta1.DevicePlugin": ["GetDevicePluginOptions", "ListAndWatch", "GetPreferredAllocation", "Allocate",
                             "PreStartContainer"],
    "pluginregistration.Registration": ["GetInfo", "NotifyRegistrationStatus"],
}


def test_committed_stubs_are_what_the_protos_generate() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/gen-protos"), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", [dp, reg], ids=["v1beta1", "pluginregistration"])
def test_messages_match_kubelets_field_numbers(module: object) -> None:
    descriptor = module.DESCRIPTOR  # type: ignore[attr-defined]
    assert descriptor.package == ("v1beta1" if module is dp else "pluginregistration")
    messages = KUBELET_MESSAGES[module]  # type: ignore[index]
    assert set(descriptor.message_types_by_name) == set(messages)
    for name, fields in messages.items():
        got = [(f.name, f.number, f.is_repeated) for f in descriptor.message_types_by_name[name].fields]
        assert got == fields, name


def test_numeric_fields_have_kubelets_wire_types() -> None:
    assert dp.NUMANode.DESCRIPTOR.fields_by_name["ID"].type == FieldDescriptor.TYPE_INT64
    request = dp.ContainerPreferredAllocationRequest.DESCRIPTOR
    assert request.fields_by_name["allocation_size"].type == FieldDescriptor.TYPE_INT32


def test_full_method_names_are_kubelets() -> None:
    services = {s.full_name: [m.name for m in s.methods]
                for module in (dp, reg) for s in module.DESCRIPTOR.services_by_name.values()}
    assert services == KUBELET_METHODS
    streaming = dp.DESCRIPTOR.services_by_name["DevicePlugin"].methods_by_name["ListAndWatch"]
    assert streaming.server_streaming and not streaming.client_streaming
