"""NodeState specs the node daemon cannot act on, as a table: each is refused before any step, naming the field.
`vdpactl node plan` and `node apply` exit 2 with the field's path, file and line; the daemon reports
`syncStatus: Failed` with the path in `lastSyncError`, and keeps serving: the next good spec applies. Nothing
changes on the simulated host either way.

Before these checks, `vdpaType: evil` crashed the planner with a KeyError (the status kept saying Succeeded), a
negative numVfs failed halfway through an apply, and the same PF twice was reconfigured on every pass.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.types import PatchType
from node_runs import NODE, differences, host_snapshot, node_state_file, vdpactl

from integration.conftest import server  # noqa: F401 - the embedded API server fixture
from integration.daemon.test_node_daemon import run_daemon, state_when, sync_status
from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.daemon.kube import NodeStateResource
from vdpa_operator.host.sim import SimKernel
from vdpa_operator.sim.apiserver import ServerHandle

SEED: dict[str, Any] = json.loads((Path(__file__).parents[1] / "golden/seed-node-state-spec.json").read_text())
"""The seed policy rendered for worker-0: two PFs, two VFs each in one virtio group."""


def changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(SEED)
    change(spec)
    return spec


def group(spec: dict[str, Any], pf: int = 0, index: int = 0) -> dict[str, Any]:
    return spec["interfaces"][pf]["vfGroups"][index]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Bad:
    spec: dict[str, Any]
    field: str
    """The path every answer must name."""
    says: str
    """What the answer must say about it."""
    line_of: str
    """Text on the field's line in the state file (the last line holding it)."""
    schema_allows: bool = True
    """Whether the CRD schema lets the object in (the rule is no enum or minimum the schema carries): the daemon's
    part of the table takes only these, as the API server refuses the others itself (tests/hostile/
    test_crd_schema.py). For the others, `says` is the schema's message: decoding refuses them first."""


def unsupported(value: str, *allowed: str) -> str:
    """The CRD schema's answer for a value outside an enum (the enums carry "" for Go's omitempty)."""
    return f'Unsupported value: "{value}": supported values: ' + ", ".join(f'"{a}"' for a in allowed)


def _set(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        target: Any = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


CASES = {
    "vdpaType-evil": Bad(changed(lambda s: group(s, 1).update(vdpaType="evil")),
                         "spec.interfaces[1].vfGroups[0].vdpaType", unsupported("evil", "", "virtio", "vhost"),
                         '"vdpaType": "evil"', schema_allows=False),
    "numVfs-negative": Bad(changed(_set(["interfaces", 0, "numVfs"], -1)), "spec.interfaces[0].numVfs",
                           "Invalid value: -1: must be greater than or equal to 0", '"numVfs": -1',
                           schema_allows=False),
    "same-PF-twice": Bad(changed(lambda s: s["interfaces"][1].update(pciAddress=s["interfaces"][0]["pciAddress"])),
                         "spec.interfaces[1].pciAddress", "0000:65:00.0 is also spec.interfaces[0]",
                         '"pciAddress": "0000:65:00.0"'),
    "numVfs-beyond-totalvfs": Bad(changed(_set(["interfaces", 0, "numVfs"], 9)), "spec.interfaces[0].numVfs",
                                  "9 is more than the 8 VFs 0000:65:00.0 supports (sriov_totalvfs)", '"numVfs": 9'),
    "vfRange-beyond-numVfs": Bad(changed(lambda s: group(s).update(vfRange="0-2")),
                                 "spec.interfaces[0].vfGroups[0].vfRange",
                                 "0-2 is outside the PF's VFs 0-1 (numVfs 2)", '"vfRange": "0-2"'),
    "vfRange-backwards": Bad(changed(lambda s: group(s).update(vfRange="1-0")),
                             "spec.interfaces[0].vfGroups[0].vfRange", "1-0 starts after it ends", '"vfRange": "1-0"'),
    "vfRange-not-a-range": Bad(changed(lambda s: group(s).update(vfRange="all")),
                               "spec.interfaces[0].vfGroups[0].vfRange", "'all' is not a VF range",
                               '"vfRange": "all"'),
    "groups-overlap": Bad(changed(lambda s: s["interfaces"][0]["vfGroups"].append({**group(s), "vfRange": "1-1"})),
                          "spec.interfaces[0].vfGroups[1].vfRange",
                          "1-1 overlaps spec.interfaces[0].vfGroups[0].vfRange (0-1)", '"vfRange": "1-1"'),
    "eSwitchMode-unknown": Bad(changed(_set(["interfaces", 0, "eSwitchMode"], "turbo")),
                               "spec.interfaces[0].eSwitchMode", unsupported("turbo", "", "legacy", "switchdev"),
                               '"eSwitchMode": "turbo"', schema_allows=False),
    "deviceType-unknown": Bad(changed(lambda s: group(s).update(deviceType="nvme", vdpaType="")),
                              "spec.interfaces[0].vfGroups[0].deviceType",
                              unsupported("nvme", "", "netdevice", "vfio-pci"),
                              '"deviceType": "nvme"', schema_allows=False),
    "linkType-unknown": Bad(changed(_set(["interfaces", 0, "linkType"], "token-ring")),
                            "spec.interfaces[0].linkType", unsupported("token-ring", "", "eth", "ETH", "ib", "IB"),
                            '"linkType": "token-ring"', schema_allows=False),
    "mtu-too-small": Bad(changed(_set(["interfaces", 0, "mtu"], 40)), "spec.interfaces[0].mtu",
                         "40 is not an MTU; use 68-65535", '"mtu": 40', schema_allows=False),
    "group-mtu-too-big": Bad(changed(lambda s: group(s).update(mtu=70000)), "spec.interfaces[0].vfGroups[0].mtu",
                             "70000 is not an MTU", '"mtu": 70000', schema_allows=False),
    "pciAddress-without-domain": Bad(changed(_set(["interfaces", 0, "pciAddress"], "65:00.0")),
                                     "spec.interfaces[0].pciAddress", "'65:00.0' is not a PCI address",
                                     '"pciAddress": "65:00.0"'),
    "name-not-a-netdev-name": Bad(changed(_set(["interfaces", 0, "name"], "ens1f0/../x")), "spec.interfaces[0].name",
                                  "'ens1f0/../x' is not a netdev name", '"name": "ens1f0/../x"'),
}


@pytest.fixture
def sim_root(tmp_path: Path) -> Path:
    """A simulated host that has been discovered once (the daemon's first look writes its reset checkpoint)."""
    root = tmp_path / "host"
    SimKernel.create(root, real_netdevs=False)
    code, _, err = vdpactl("node", "discover", "--host", "sim", root=root)
    assert code == 0, err
    return root


def expected_line(path: Path, case: Bad) -> int:
    return max(number for number, line in enumerate(path.read_text().splitlines(), 1) if case.line_of in line)


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_cli_exits_2_naming_the_field_and_changes_nothing(sim_root: Path, tmp_path: Path, case: Bad,
                                                          command: str) -> None:
    before = host_snapshot(sim_root)
    state = node_state_file(tmp_path, case.spec)
    code, out, err = vdpactl("node", command, "--host", "sim", "-f", str(state), root=sim_root)
    assert code == 2, err
    where = f"{state}:{expected_line(state, case)}: SriovNetworkNodeState \"{NODE}\": {case.field}: "
    assert err.startswith(f"error: {where}{case.says}"), err
    assert "Traceback" not in err and out == ""
    assert not (diff := differences(host_snapshot(sim_root), before)), diff


def test_the_seed_passes() -> None:
    """The table's base spec is one the daemon takes: each case is refused for its change alone."""
    from vdpa_operator.api.models import SriovNetworkNodeStateSpec
    from vdpa_operator.api.nodestate_checks import spec_problems

    assert spec_problems(SriovNetworkNodeStateSpec.model_validate(SEED), {"0000:65:00.0": 8, "0000:65:00.1": 8}) == []


# --- the daemon -----------------------------------------------------------------------------------------------------

DAEMON_CASES = {name: case for name, case in CASES.items() if case.schema_allows}


def last_sync_error(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("lastSyncError", ""))


def test_daemon_fails_each_bad_spec_naming_the_field_then_applies_a_good_one(sim_root: Path, tmp_path: Path,
                                                                               server: ServerHandle,  # noqa: F811
                                                                               ) -> None:
    before = host_snapshot(sim_root)

    async def scenario(client: AsyncClient, kernel: SimKernel) -> None:
        for name, case in DAEMON_CASES.items():
            await client.patch(NodeStateResource, NODE, {"spec": case.spec}, namespace=DEFAULT_NAMESPACE,
                               patch_type=PatchType.MERGE)
            said = f"{case.field}: {case.says}"
            obj = await state_when(client, lambda o, said=said: said in last_sync_error(o))
            assert sync_status(obj) == "Failed", name
            assert not (diff := differences(host_snapshot(sim_root), before)), (name, diff)
        await client.patch(NodeStateResource, NODE, {"spec": SEED}, namespace=DEFAULT_NAMESPACE,
                           patch_type=PatchType.MERGE)
        done = await state_when(client, lambda o: sync_status(o) == "Succeeded")
        assert "lastSyncError" not in done["status"]
        assert {i["eSwitchMode"] for i in done["status"]["interfaces"]} == {"switchdev"}

    run_daemon(server, tmp_path, scenario, spec=next(iter(DAEMON_CASES.values())).spec, root=sim_root, timeout=60)
