"""`vdpactl render` prints what the operator's policy sync writes, for every upstream render case.

The cases are upstream's policy rendering tables as tests/unit ports them (`api/v1/helper_test.go`: Apply, the
vDPA policies, a bad pfNames range, bridges; the device-plugin config tests: config data, link types, device
ids), each one policy on one node with the table's NICs. Each case goes through both paths and the results are
compared: the CLI in process, and the real operator over HTTP against the embedded API server. Nothing here says
what either should print.

The cluster side stores the case as a cluster with the operator does: the API server applies the CRD defaults,
and the policy passes the operator's mutating webhook, served by a replica that does not lead. The validating
webhook is not registered, since what admission would refuse is exactly what this compares (the operator renders
stored objects without admission, as upstream's does; such objects get stored when admission ran against other
nodes, or did not run). A second operator, the leader, then makes one sync pass over what is stored.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lightkube.resources.admissionregistration_v1 import ValidatingWebhookConfiguration
from lightkube.types import PatchType
from operator_harness import NS, client_for, eventually, operator_running

from unit import test_render_deviceplugin as device_plugin_tables
from unit import test_render_nodestate as node_state_tables
from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.api.models import SriovNetworkNodePolicy, SriovNetworkNodeState, SriovOperatorConfig
from vdpa_operator.cli import main
from vdpa_operator.controller.leader import LEASE_NAME
from vdpa_operator.controller.settings import SyncTiming
from vdpa_operator.controller.webhook import CONFIGURATION_NAME, WebhookOptions
from vdpa_operator.kubeclient import (
    ConfigMapResource,
    EventResource,
    LeaseResource,
    NodeResource,
    NodeStateResource,
    OperatorConfigResource,
    PolicyResource,
    rfc3339,
)
from vdpa_operator.render.policy_sync import CONFIGMAP_NAME, DEVICE_PLUGIN_LABEL, MANAGE_SOFTWARE_BRIDGES
from vdpa_operator.sim.apiserver import serve_in_thread
from vdpa_operator.sim.apiserver.inthread import default_store
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES

NODE = "worker-0"
NODE_LABELS = {"node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux",
               "feature.node.kubernetes.io/network-sriov.capable": "true"}
"""A worker the default configDaemonNodeSelector picks, with the label the tables' nodeSelectors ask for."""


@dataclass(frozen=True)
class Case:
    id: str
    policy: SriovNetworkNodePolicy
    state: SriovNetworkNodeState
    """Only its status (the NICs) is used: the sync renders every spec from scratch."""
    feature_gates: dict[str, bool] = field(default_factory=dict)


def upstream_cases() -> list[Case]:
    nodestate, dp = node_state_tables, device_plugin_tables
    cases = [Case(f"Apply/{name}", new, current) for name, current, new, _, _ in nodestate.APPLY_CASES]
    cases += [
        Case("Apply/virtio vdpa", nodestate.virtio_policy(), nodestate.node_state()),
        Case("Apply/vhost vdpa", nodestate.vhost_policy(), nodestate.node_state()),
        Case("Apply/bad pf partition",
             nodestate.policy(nicSelector={"pfNames": ["ens803f0#a-c"], "rootDevices": []}), nodestate.node_state()),
    ]
    bridges = {MANAGE_SOFTWARE_BRIDGES: True}
    cases += [Case(f"ApplyBridgeConfig/{name}", new, current, bridges)
              for name, current, new, _ in nodestate.BRIDGE_CASES]
    cases += [Case(f"RenderDevicePluginConfigData/{name}", p, dp.state()) for name, p, _, _ in dp.RENDER_CASES]
    for device_type, link_type, _ in dp.LINK_TYPE_CASES:
        spec: dict[str, Any] = {"deviceType": device_type, "nicSelector": {"vendor": "15b3"}}
        if link_type:
            spec["linkType"] = link_type
        cases.append(Case(f"linkType/{device_type}-{link_type}", dp.policy("p", **spec), dp.state()))
    for num_vfs, device_id, _ in dp.DEVICE_CASES:
        p = dp.policy("p", numVfs=num_vfs, nicSelector={"vendor": "15b3", "deviceID": device_id})
        cases.append(Case(f"devices/{num_vfs}-{device_id}", p, dp.state()))
    return cases


CASES = upstream_cases()


def test_every_upstream_render_case_is_compared() -> None:
    assert len(CASES) == 33
    assert len({c.id for c in CASES}) == len(CASES)


# --- the case as objects --------------------------------------------------------------------------------------


def policy_doc(case: Case) -> dict[str, Any]:
    """The policy as a user writes it (what was set, nothing more), in the operator namespace."""
    return {"apiVersion": SriovNetworkNodePolicy.API_VERSION, "kind": SriovNetworkNodePolicy.KIND,
            "metadata": {"name": case.policy.name or "p", "namespace": NS}, "spec": case.policy.to_dict()["spec"]}


def operator_config_doc(case: Case) -> dict[str, Any]:
    spec = {"featureGates": case.feature_gates} if case.feature_gates else {}
    return {"apiVersion": SriovOperatorConfig.API_VERSION, "kind": SriovOperatorConfig.KIND,
            "metadata": {"name": "default", "namespace": NS}, "spec": spec}


def node_doc() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": NODE_LABELS}}


def node_state_doc(case: Case) -> dict[str, Any]:
    return {"apiVersion": SriovNetworkNodeState.API_VERSION, "kind": SriovNetworkNodeState.KIND,
            "metadata": {"name": NODE, "namespace": NS}, "status": case.state.to_dict().get("status", {})}


@dataclass(frozen=True)
class Written:
    """What one sync leaves behind: NodeState specs by node, the ConfigMap's data, device-plugin labels by node;
    or, when the sync fails and writes nothing, its error."""

    specs: dict[str, Any] = field(default_factory=dict)
    config_map: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None


# --- the CLI ------------------------------------------------------------------------------------------------------


def cli_render(case: Case, tmp_path: Path) -> Written:
    files = {
        "inputs.json": [operator_config_doc(case), policy_doc(case)],
        "node-states.json": [node_state_doc(case)],
        "nodes.json": [node_doc()],
    }
    for name, items in files.items():
        (tmp_path / name).write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    result = CliRunner().invoke(main, [
        "render", "-f", str(tmp_path / "inputs.json"), "--node-states", str(tmp_path / "node-states.json"),
        "--nodes", str(tmp_path / "nodes.json"), "--namespace", NS, "-o", "json",
    ], env={"NAMESPACE": None, "DEV_MODE": None, "RESOURCE_PREFIX": None})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    if result.exit_code == 1:
        [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        return Written(error=error.removeprefix("error: "))
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    return Written(
        specs={o["metadata"]["name"]: o["spec"] for o in items if o["kind"] == SriovNetworkNodeState.KIND},
        config_map=next(o["data"] for o in items if o["kind"] == "ConfigMap"),
        labels={o["metadata"]["name"]: o["metadata"]["labels"][DEVICE_PLUGIN_LABEL]
                for o in items if o["kind"] == "Node"},
    )


# --- the operator ---------------------------------------------------------------------------------------------


async def store_case(server: Any, case: Case, cert_dir: Path) -> None:
    """The objects of the case as the API server stores them, the policy through the mutating webhook only."""
    client = client_for(server)
    try:
        await client.create(OperatorConfigResource.from_dict(operator_config_doc(case)))
        await client.create(NodeResource.from_dict(node_doc()))
        state = node_state_doc(case)
        await client.create(NodeStateResource.from_dict({**state, "status": {}}))
        await client.patch(NodeStateResource.Status, NODE, {"status": state["status"]}, namespace=NS,
                           patch_type=PatchType.MERGE)
        # Another replica leads, so this one serves the webhooks and never syncs.
        now = datetime.datetime.now(datetime.UTC)
        await client.create(LeaseResource.from_dict({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE_NAME, "namespace": NS},
            "spec": {"holderIdentity": "the-leader", "leaseDurationSeconds": 3600,
                     "renewTime": rfc3339(now).replace("Z", ".000000Z")}}))
        webhook = WebhookOptions(cert_dir=cert_dir, host="127.0.0.1", port=0, local_url_host="127.0.0.1")
        async with operator_running(server, webhook=webhook):
            await client.delete(ValidatingWebhookConfiguration, CONFIGURATION_NAME)
            await client.create(PolicyResource.from_dict(policy_doc(case)))
    finally:
        await client.close()


async def sync_once(server: Any) -> Written:
    """One policy sync pass of a leading operator over what is stored; what it wrote, or its error."""
    client = client_for(server)
    try:
        async with operator_running(server, leader_election=False, sync=SyncTiming(enqueue_delay=0.0)) as operator:
            async def one_pass() -> bool:
                return operator.sync_queue.handled >= 1

            await eventually(one_pass, what="one policy sync pass")
        failed = [e async for e in client.list(EventResource, namespace=NS) if e["reason"] == "SyncFailed"]
        if failed:
            return Written(error=failed[0]["message"])
        states = {s["metadata"]["name"]: s.get("spec") or {}
                  async for s in client.list(NodeStateResource, namespace=NS)}
        config_map = await client.get(ConfigMapResource, CONFIGMAP_NAME, namespace=NS)
        nodes = [n async for n in client.list(NodeResource)]
        labels = {n["metadata"]["name"]: n["metadata"]["labels"][DEVICE_PLUGIN_LABEL]
                  for n in nodes if DEVICE_PLUGIN_LABEL in n["metadata"].get("labels", {})}
        return Written(specs=states, config_map=dict(config_map.get("data") or {}), labels=labels)
    finally:
        await client.close()


def operator_render(case: Case, tmp_path: Path, cert_dir: Path) -> Written:
    store = default_store(namespaces=(*BUILTIN_NAMESPACES, DEFAULT_NAMESPACE))
    server = serve_in_thread(tmp_path / "kubeconfig", store=store)
    try:
        asyncio.run(store_case(server, case, cert_dir))
        return asyncio.run(sync_once(server))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One webhook certificate for every case (made once, reused)."""
    return tmp_path_factory.mktemp("certs")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_render_prints_what_the_operator_sync_writes(case: Case, tmp_path: Path, cert_dir: Path) -> None:
    (tmp_path / "cli").mkdir()
    printed = cli_render(case, tmp_path / "cli")
    written = operator_render(case, tmp_path, cert_dir)
    assert printed == written
