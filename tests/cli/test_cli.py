"""The `vdpactl validate` / `render` contract: output shapes, exit codes, and errors that name file and line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import scenario
from vdpa_operator.cli import main

SEED = str(scenario.SEED_POLICY_FILE)
STATES = str(scenario.NODE_STATES_FILE)
NODES = str(scenario.NODES_FILE)
NS = "openshift-sriov-network-operator"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def policy(name: str, **spec: object) -> str:
    body = {
        "resourceName": "mlxnics",
        "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
        "numVfs": 2,
        "nicSelector": {"vendor": "15b3", "deviceID": "101d", "rootDevices": ["0000:65:00.0"]},
        **spec,
    }
    doc = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
           "metadata": {"name": name, "namespace": NS}, "spec": body}
    return json.dumps(doc)


def test_seed_policy_is_admitted_with_the_webhook_mutation() -> None:
    code, out, _ = run("validate", "-f", SEED, "--node-states", STATES, "--nodes", NODES, "-o", "json")
    assert code == 0
    [record] = json.loads(out)
    assert set(record) == {"kind", "name", "namespace", "allowed", "errors", "warnings", "patch"}
    assert record["kind"] == "SriovNetworkNodePolicy"
    assert record["name"] == "vdpa-policy" and record["namespace"] == NS
    assert record["allowed"] is True and record["errors"] == [] and record["warnings"] == []
    # priority is given in the seed, isRdma is not: the webhook adds only isRdma.
    assert record["patch"] == [{"op": "add", "path": "/spec/isRdma", "value": False}]


def test_priority_patch_when_absent(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy("p", deviceType="netdevice"))
    code, out, _ = run("validate", "-f", path, "-o", "json")
    assert code == 0
    assert {"op": "add", "path": "/spec/priority", "value": 99} in json.loads(out)[0]["patch"]


def test_vdpa_with_vfio_pci_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy("p", deviceType="vfio-pci", eSwitchMode="switchdev", vdpaType="virtio"))
    code, out, _ = run("validate", "-f", path, "-o", "json")
    assert code == 1
    [record] = json.loads(out)
    assert record["allowed"] is False
    assert any("'deviceType: vfio-pci' conflicts with 'virtio'" in e for e in record["errors"])


def test_table_output_names_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy("p", vdpaType="virtio"))
    code, out, _ = run("validate", "-f", path)
    assert code == 1
    assert "REJECTED" in out
    assert "vdpa requires the device to be configured in switchdev mode" in out


def test_later_documents_see_earlier_ones(tmp_path: Path) -> None:
    """Two unranged policies on one PF by name: the second is rejected, as in a cluster."""
    first = policy("a", nicSelector={"pfNames": ["ens1f0"]})
    second = policy("b", nicSelector={"pfNames": ["ens1f0"]})
    path = write(tmp_path, "p.yaml", f"{first}\n---\n{second}\n")
    code, out, _ = run("validate", "-f", path, "--node-states", STATES, "--nodes", NODES, "-o", "json")
    assert code == 1
    records = json.loads(out)
    assert [r["allowed"] for r in records] == [True, False]
    assert "VF index range in ens1f0 is overlapped with existing policy a" in records[1]["errors"][0]


def test_same_name_twice_is_an_update_not_a_conflict(tmp_path: Path) -> None:
    doc = policy("a", nicSelector={"pfNames": ["ens1f0"]})
    path = write(tmp_path, "p.yaml", f"{doc}\n---\n{doc}\n")
    code, _, _ = run("validate", "-f", path, "--node-states", STATES, "--nodes", NODES)
    assert code == 0


def test_schema_violation_is_a_rejection(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy("p", priority=100))
    code, out, _ = run("validate", "-f", path, "-o", "json")
    assert code == 1
    assert any(e.startswith("spec.priority: Invalid value: 100") for e in json.loads(out)[0]["errors"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: [unclosed\n", "(while parsing a flow sequence started at line 1)"),
        ("a: 1\na: 2\n", ':2: mapping key "a" already defined'),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", 'unknown kind "v1/Pod"'),
        ("just a string\n", "expected an object"),
    ],
)
def test_unreadable_input_exits_2_with_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    code, out, err = run("validate", "-f", path)
    assert code == 2
    assert out == ""
    assert path in err and expected in err
    assert "Traceback" not in err


def test_unknown_field_and_wrong_type_name_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", """\
        apiVersion: sriovnetwork.openshift.io/v1
        kind: SriovNetworkNodePolicy
        metadata:
          name: p
        spec:
          resourceName: mlxnics
          nodeSelector: {}
          numVfs: 2
          nicSelector:
            vendr: "15b3"
            deviceID: 1017
        """)
    code, _, err = run("validate", "-f", path)
    assert code == 2
    assert f'{path}:10: SriovNetworkNodePolicy "p": unknown field "spec.nicSelector.vendr"' in err
    assert f"{path}:11: " in err and "spec.nicSelector.deviceID: expected string, got integer 1017" in err


def test_missing_file_exits_2() -> None:
    code, _, err = run("validate", "-f", "/nonexistent/policy.yaml")
    assert code == 2
    assert "/nonexistent/policy.yaml: no such file" in err


def test_nothing_is_evaluated_when_one_file_is_bad(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", policy("p"))
    bad = write(tmp_path, "bad.yaml", "kind: [\n")
    code, out, _ = run("validate", "-f", good, "-f", bad, "-o", "json")
    assert code == 2 and out == ""


def test_render_seed() -> None:
    code, out, _ = run("render", "-f", SEED, "--node-states", STATES, "--nodes", NODES, "-o", "json")
    assert code == 0
    items = json.loads(out)["items"]
    kinds = [i["kind"] for i in items]
    assert kinds == ["SriovNetworkNodeState", "ConfigMap", "Node"]
    state = items[0]
    assert state["metadata"] == {"name": "worker-0", "namespace": NS}
    interfaces = state["spec"]["interfaces"]
    assert [i["pciAddress"] for i in interfaces] == ["0000:65:00.0", "0000:65:00.1"]
    for iface in interfaces:
        assert iface["numVfs"] == 2 and iface["eSwitchMode"] == "switchdev"
        assert iface["vfGroups"] == [{"resourceName": "mlxnics", "deviceType": "netdevice", "vfRange": "0-1",
                                      "policyName": "vdpa-policy", "vdpaType": "virtio"}]
    config = json.loads(items[1]["data"]["worker-0"])
    [resource] = config["resourceList"]
    assert resource["selectors"]["vdpaType"] == "virtio"
    assert resource["selectors"]["devices"] == ["101e"]
    assert items[2]["metadata"]["labels"] == {"sriovnetwork.openshift.io/device-plugin": "Enabled"}


def test_render_yaml_is_a_document_stream() -> None:
    code, out, _ = run("render", "-f", SEED, "--node-states", STATES, "--nodes", NODES)
    assert code == 0
    assert out.startswith("---\napiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodeState\n")
    assert out.count("---\n") == 3


def test_render_needs_node_states() -> None:
    code, _, err = run("render", "-f", SEED)
    assert code == 2
    assert "--node-states is required" in err


def test_render_writes_what_admission_refuses_with_a_warning_naming_object_and_field(tmp_path: Path) -> None:
    """The operator renders stored objects without admission, so render prints what it would write; validate
    keeps refusing."""
    path = write(tmp_path, "p.yaml", policy("p", vdpaType="virtio"))
    code, _, _ = run("validate", "-f", path, "--node-states", STATES, "--nodes", NODES)
    assert code == 1
    code, out, err = run("render", "-f", path, "--node-states", STATES, "--nodes", NODES, "-o", "json")
    assert code == 0
    [state] = [o for o in json.loads(out)["items"] if o["kind"] == "SriovNetworkNodeState"]
    [group] = state["spec"]["interfaces"][0]["vfGroups"]
    assert (group["policyName"], group["vdpaType"]) == ("p", "virtio")
    [warning] = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: {path}:1: SriovNetworkNodePolicy {NS}/p: spec.eSwitchMode: ")
    assert "switchdev" in warning


def test_render_strict_makes_admission_findings_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy("p", vdpaType="virtio"))
    code, out, err = run("render", "--strict", "-f", path, "--node-states", STATES, "--nodes", NODES)
    assert code == 2 and out == ""
    assert f"error: {path}:1: SriovNetworkNodePolicy {NS}/p: spec.eSwitchMode: " in err
    code, out, err = run("render", "--strict", "-f", SEED, "--node-states", STATES, "--nodes", NODES)
    assert code == 0 and out and "error" not in err


def test_render_leaves_out_what_the_api_server_would_not_store(tmp_path: Path) -> None:
    """A value outside the CRD schema never reaches the operator: a warning, and the rest is rendered."""
    path = write(tmp_path, "p.yaml", policy("bogus", deviceType="bogus", resourceName="other"))
    code, out, err = run("render", "-f", SEED, "-f", path, "--node-states", STATES, "--nodes", NODES, "-o", "json")
    assert code == 0
    [config_map] = [o for o in json.loads(out)["items"] if o["kind"] == "ConfigMap"]
    assert [r["resourceName"] for r in json.loads(config_map["data"]["worker-0"])["resourceList"]] == ["mlxnics"]
    [warning] = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: {path}:1: SriovNetworkNodePolicy {NS}/bogus: spec.deviceType: ")
    assert warning.endswith("; not rendered: the API server refuses it")


def test_render_reads_the_environment_as_the_operator_does(tmp_path: Path) -> None:
    """One reading of the operator's environment: an empty RESOURCE_PREFIX stops the operator, so render says so."""
    result = CliRunner().invoke(main, ["render", "-f", SEED, "--node-states", STATES, "--nodes", NODES],
                                env={"RESOURCE_PREFIX": ""})
    assert result.exit_code == 2 and result.stdout == ""
    assert "RESOURCE_PREFIX is empty" in result.stderr
    result = CliRunner().invoke(main, ["render", "-f", SEED, "--node-states", STATES, "--nodes", NODES],
                                env={"NAMESPACE": "elsewhere"})
    assert result.exit_code == 0
    assert f"SriovNetworkNodePolicy {NS}/vdpa-policy: ignored; the operator only reads policies in elsewhere" \
        in result.stderr


def test_node_states_from_another_operator_version_are_read_with_a_note(tmp_path: Path) -> None:
    text = scenario.NODE_STATES_FILE.read_text().replace(
        "status:\n", "spec:\n  dpConfigVersion: \"42\"\nstatus:\n"
    )
    states = write(tmp_path, "states.yaml", text)
    code, _, err = run("validate", "-f", SEED, "--node-states", states, "--nodes", NODES)
    assert code == 0
    assert 'ignoring fields this version does not know: spec.dpConfigVersion' in err


def test_policies_stay_strict_about_unknown_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", policy("p", dpConfigVersion="42"))
    code, _, err = run("validate", "-f", path)
    assert code == 2
    assert 'unknown field "spec.dpConfigVersion"' in err


def test_render_prints_one_nodes_device_plugin_config_as_the_configmap_holds_it() -> None:
    code, out, _ = run("render", "-f", SEED, "--node-states", STATES, "--nodes", NODES, "-o", "json")
    assert code == 0
    [configmap] = [o for o in json.loads(out)["items"] if o["kind"] == "ConfigMap"]
    code, entry, _ = run("render", "-f", SEED, "--node-states", STATES, "--nodes", NODES,
                         "--device-plugin-config", "worker-0")
    assert code == 0 and entry == configmap["data"]["worker-0"] + "\n"
    code, _, err = run("render", "-f", SEED, "--node-states", STATES, "--device-plugin-config", "worker-9")
    assert code == 2 and "--device-plugin-config worker-9: no such node in the rendering (nodes: worker-0)" in err
