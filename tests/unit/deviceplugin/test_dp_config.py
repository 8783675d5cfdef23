"""The resource config as upstream's parser reads it: what the operator renders, upstream's own test configs,
Go's case-insensitive keys, and one clear error per kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vdpa_operator.deviceplugin.config import (
    ConfigError,
    FunctionRange,
    NetSelector,
    parse_config,
    parse_function_range,
)

GOLDEN = json.loads((Path(__file__).parents[2] / "golden/device-plugin-configmaps.json").read_text())


def parse(text: str, prefix: str = "openshift.io"):  # type: ignore[no-untyped-def]
    return parse_config(text, source="config.json", default_prefix=prefix)


def test_the_operators_seed_configmap_entry() -> None:
    config = parse(GOLDEN["seed"]["data"]["worker-0"])
    [resource] = config.resources
    assert resource.resource_name == "openshift.io/mlxnics"
    assert resource.selectors == (NetSelector(vendors=("15b3",), devices=("101e",),
                                              root_devices=("0000:65:00.0", "0000:65:00.1"), vdpa_type="virtio"),)
    assert not resource.exclude_topology
    # The operator's stray `SelectorObj: null` is no field of upstream's struct: ignored, and being the operator's
    # own, without a warning at every start; other unknown keys are still named.
    assert config.warnings == ()
    stray = GOLDEN["seed"]["data"]["worker-0"].replace('"SelectorObj":null', '"SelectorObjs":null,"Colour":1')
    assert parse(stray).warnings == ("config.json: resourceList[0]: unknown field 'Colour' ignored",)


def test_the_operators_partition_configmap_entry() -> None:
    config = parse(GOLDEN["partition"]["data"]["worker-0"])
    assert [(r.name, r.selectors[0].pf_names, r.selectors[0].vdpa_type) for r in config.resources] == [
        ("vhostvdpa", ("ens1f0#0-1",), "vhost"), ("virtiovdpa", ("ens1f0#2-3",), "virtio")]


def test_upstream_multi_selector_config() -> None:
    """cmd/sriovdp/manager_test.go: one object, then a list of two (the second with `isRdma`)."""
    config = parse("""{"resourceList": [
        {"resourceName": "intel_sriov_netdevice",
         "selectors": {"isRdma": false, "vendors": ["8086"], "devices": ["154c", "10ed"],
                       "drivers": ["i40evf", "ixgbevf"]}},
        {"resourceName": "dpdk",
         "selectors": [{"vendors": ["8086"], "devices": ["154c", "10ed"], "drivers": ["vfio-pci"]},
                       {"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_core"], "isRdma": true}]}]}""")
    assert [len(r.selectors) for r in config.resources] == [1, 2]
    assert config.resources[1].selectors[1].is_rdma
    assert config.warnings == ()


def test_keys_match_ignoring_case_exact_name_first() -> None:
    config = parse('{"ResourceList": [{"RESOURCENAME": "a", "Selectors": {"VDPATYPE": "vhost", '
                   '"isrdma": false, "needvhostnet": true, "PfNames": ["p0"]}}]}')
    [resource] = config.resources
    assert resource.name == "a"
    assert resource.selectors[0] == NetSelector(pf_names=("p0",), vdpa_type="vhost", need_vhost_net=True)


def test_a_resources_own_prefix_wins() -> None:
    config = parse('{"resourceList": [{"resourceName": "a", "resourcePrefix": "nvidia.com", "selectors": {}},'
                   ' {"resourceName": "b", "selectors": {}}]}')
    assert [r.resource_name for r in config.resources] == ["nvidia.com/a", "openshift.io/b"]


def test_no_resources() -> None:
    assert parse('{"resourceList":null}').resources == ()
    assert parse("{}").resources == ()


def test_other_device_types_are_skipped_with_a_warning() -> None:
    config = parse('{"resourceList": [{"resourceName": "qat", "deviceType": "accelerator", "selectors": {}},'
                   ' {"resourceName": "b", "deviceType": "netDevice", "selectors": {}}]}')
    assert [r.name for r in config.resources] == ["b"]
    assert "deviceType accelerator is not served" in config.warnings[0]


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "config.json: not valid JSON: Expecting value at line 1 column 1"),
    ("[]", "expected a JSON object"),
    ('{"resourceList": {}}', "resourceList: expected a list, got object"),
    ('{"resourceList": [{"resourceName": "invalid.name", "selectors": {}}]}',
     "resourceList[0] (invalid.name).resourceName: 'invalid.name' contains invalid characters"),
    ('{"resourceList": [{"selectors": {}}]}', "resourceList[0].resourceName: required"),
    ('{"resourceList": [{"resourceName": "a", "selectors": {}}, {"resourceName": "a", "selectors": {}}]}',
     "resourceList[1]: resource openshift.io/a is already defined by resourceList[0]"),
    ('{"resourceList": [{"resourceName": "a"}]}', "resourceList[0] (a).selectors: required"),
    ('{"resourceList": [{"resourceName": "a", "selectors": []}]}', "need at least one selector"),
    ('{"resourceList": [{"resourceName": "a", "selectors": "x"}]}', "expected an object or a list of objects"),
    ('{"resourceList": [{"resourceName": "a", "selectors": {"vendors": "15b3"}}]}',
     "resourceList[0] (a).selectors.vendors: expected a list of strings, got string \"15b3\""),
    ('{"resourceList": [{"resourceName": "a", "selectors": {"devices": [4119]}}]}',
     "selectors.devices[0]: expected a string, got number 4119"),
    ('{"resourceList": [{"resourceName": "a", "selectors": [{}, {"IsRdma": "yes"}]}]}',
     "selectors[1].IsRdma: expected true or false, got string \"yes\""),
    ('{"resourceList": [{"resourceName": "a", "selectors": {"vdpaType": "evil"}}]}',
     "selectors.vdpaType: 'evil' is not a vDPA type; use virtio or vhost"),
    ('{"resourceList": [{"resourceName": "a", "selectors": {"isRdma": true, "vdpaType": "virtio"}}]}',
     "vdpaType and isRdma are mutually exclusive"),
    ('{"resourceList": [{"resourceName": "a", "selectors": [{"vdpaType": "virtio"}, '
     '{"isRdma": true, "vdpaType": "virtio"}]}]}', "selectors[1]: vdpaType and isRdma are mutually exclusive"),
    ('{"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["ens1f0#0-x"]}}]}',
     "selectors.pfNames[0]: 'ens1f0#0-x': strconv.Atoi: parsing \"x\": invalid syntax"),
    ('{"resourceList": [{"resourceName": "a", "deviceType": "gpu", "selectors": {}}]}',
     "deviceType: unsupported device type 'gpu'"),
    ('{"resourceList": [{"resourceName": "a", "resourcePrefix": "Bad_Prefix", "selectors": {}}]}',
     "resourcePrefix: 'Bad_Prefix' is not a DNS subdomain"),
])
def test_bad_config_names_the_entry_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        parse(text)
    assert message in str(failure.value)
    assert str(failure.value).startswith("config.json")


def test_a_bad_command_line_prefix_says_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"resourcePrefix \(--resource-prefix\): 'test_'"):
        parse('{"resourceList": [{"resourceName": "a", "selectors": {}}]}', prefix="test_")


def test_isrdma_and_vdpatype_in_separate_selectors_is_fine() -> None:
    """Upstream: mutually exclusive within one selector only."""
    config = parse('{"resourceList": [{"resourceName": "a", "selectors": [{"vdpaType": "virtio"}, '
                   '{"isRdma": true}]}]}')
    assert len(config.resources[0].selectors) == 2


@pytest.mark.parametrize(("entry", "parsed"), [
    ("ens0", FunctionRange("ens0", None)),
    ("ens2f0#1", FunctionRange("ens2f0", ((1, 1),))),
    ("ens2f1#0,3-5,7", FunctionRange("ens2f1", ((0, 0), (3, 5), (7, 7)))),
    ("0000:86:00.2#0-2,5,7", FunctionRange("0000:86:00.2", ((0, 2), (5, 5), (7, 7)))),
])
def test_function_ranges(entry: str, parsed: FunctionRange) -> None:
    assert parse_function_range(entry) == parsed


@pytest.mark.parametrize("entry", ["p#1#2", "p#", "p#1-2-3", "p#a", "p#1-"])
def test_bad_function_ranges(entry: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_function_range(entry)
