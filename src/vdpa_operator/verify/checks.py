"""The seed's three checks, run in the pods through a `PodExec`, each turned into a `Record`.

Order matters: the driver checks (and finding each pod's VF and MAC) first, then every pod pings every other,
then each node's datapath flows are dumped — the pings are what put the pods' flows there (OVS forgets a
datapath flow after 10 s idle).

`pass` needs what the seed shows: driver `virtio_net` with bus-info `vdpa:<the VF the pod was given>`; a reply
to the ping; at least one of the pod's datapath flows `offloaded:yes`. On a node that declares a model
(`model.py`), a driver or flows check that shows exactly what the model says the kernel shows is `simulated`;
anything else fails, there as on real hardware.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from vdpa_operator.deviceplugin.allocation import env_key
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE
from vdpa_operator.verify.ethtool import EthtoolParseError, parse_driver_info
from vdpa_operator.verify.flows import DatapathFlow, FlowParseError, parse_dump_flows
from vdpa_operator.verify.ping import parse_ping
from vdpa_operator.verify.podexec import PodExec
from vdpa_operator.verify.report import Record
from vdpa_operator.verify.targets import CONFIG_DAEMON_CONTAINER, CONFIG_DAEMON_LABEL, INTERFACE, NodeView, PodTarget

VIRTIO_NET = "virtio_net"
ETHTOOL = ("ethtool", "-i", INTERFACE)
PING = ("ping", "-c", "3", "-W", "2")
DUMP_FLOWS = ("ovs-appctl", "dpctl/dump-flows", "-m")
MAC_FILE = ("cat", f"/sys/class/net/{INTERFACE}/address")
EXEC_TIMEOUT = 30.0
PARALLEL = 8
"""Commands in flight at once: enough to overlap pings' waits without queueing a large cluster's API server."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Ran:
    """A command's outcome: its text, or why it could not run or failed (`error`, "" when it exited 0)."""

    stdout: str
    error: str


async def run_in(run: PodExec, namespace: str, pod: str, command: Sequence[str], *,
                 container: str | None = None) -> Ran:
    shown = f"`{' '.join(command)}` in pod {namespace}/{pod}"
    try:
        result = await run(namespace, pod, command, container=container, timeout=EXEC_TIMEOUT)
    except (VdpaOperatorError, TimeoutError) as err:
        return Ran("", f"{shown} could not run: {err or type(err).__name__}")
    stdout = result.stdout.decode(errors="replace")
    if result.exit_code != 0:
        said = (result.stderr.decode(errors="replace").strip() or stdout.strip())[:300]
        return Ran(stdout, f"{shown} exited {result.exit_code}: {said or '(no output)'}")
    return Ran(stdout, "")


# --- which VF, which MAC -------------------------------------------------------------------------------------


async def resolve(run: PodExec, target: PodTarget) -> PodTarget:
    """Fill in what the API did not say: the VF from the pod's env, eth0's MAC from its sysfs."""
    allocated, mac = target.allocated, target.mac
    if not allocated and target.resources:
        env = await run_in(run, target.namespace, target.name, ("env",))
        allocated = allocated_from_env(env.stdout, target.resources)
    if not mac:
        mac = (await run_in(run, target.namespace, target.name, MAC_FILE)).stdout.strip().lower()
    return dataclasses.replace(target, allocated=allocated, mac=mac)


def allocated_from_env(env_text: str, resources: Iterable[str]) -> tuple[str, ...]:
    """The device IDs in `PCIDEVICE_<PREFIX>_<NAME>` of each resource (upstream's Allocate env)."""
    env = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
    found: list[str] = []
    for resource in resources:
        prefix, _, name = resource.rpartition("/")
        found += [d for d in env.get(env_key(prefix, name), "").split(",") if d]
    return tuple(dict.fromkeys(found))


# --- (1) driver --------------------------------------------------------------------------------------------------


async def driver_check(run: PodExec, target: PodTarget, node: NodeView) -> Record:
    buses = [f"vdpa:{address}" for address in target.allocated]
    expected = f"driver {VIRTIO_NET}, bus-info {' or '.join(buses) or 'vdpa:<the VF the pod was given>'}"
    record = Record("driver", target.key, target.node, "fail", "", expected=expected)
    ran = await run_in(run, target.namespace, target.name, ETHTOOL)
    if ran.error:
        return dataclasses.replace(record, observed=ran.error, reason=ran.error)
    try:
        info = parse_driver_info(ran.stdout)
    except EthtoolParseError as err:
        return dataclasses.replace(record, observed=ran.stdout.strip()[:200], reason=str(err))
    record = dataclasses.replace(record, observed=info.describe(), detail={"ethtool": dict(info.fields),
                                                                          "allocated": list(target.allocated)})
    if not target.allocated:
        return dataclasses.replace(record, reason=(
            "cannot tell which VF the device plugin gave the pod: no device-info for eth0 in its network-status "
            f"annotation and no PCIDEVICE_… variable for {', '.join(target.resources) or 'a vDPA resource'} in "
            "its env"))
    if info.driver == VIRTIO_NET and info.bus_info in buses:
        return dataclasses.replace(record, status="pass")
    if node.model is not None and info.driver == node.model.vdpa_netdev_driver:
        return _simulated_driver(record, target, node)
    return dataclasses.replace(record, reason=f"ethtool -i {INTERFACE} shows {info.describe()}, expected {expected}")


def _simulated_driver(record: Record, target: PodTarget, node: NodeView) -> Record:
    assert node.model is not None
    for address in target.allocated:
        vdpa_type = str(node.vfs.get(address, {}).get("vdpaType", ""))
        if vdpa_type in VDPA_DRIVER_FOR_TYPE:
            view = node.model.driver_view(address, vdpa_type, VDPA_DRIVER_FOR_TYPE[vdpa_type].value, node.name)
            return dataclasses.replace(record, status="simulated", model=view, reason=(
                f"{record.observed}: the simulated host's netdev, not hardware"))
    return dataclasses.replace(record, reason=(
        f"the pod was given {', '.join(target.allocated)}, which NodeState {node.name} status does not list as a "
        "VF with a vDPA device"))


# --- (2) ping ----------------------------------------------------------------------------------------------------


async def ping_check(run: PodExec, source: PodTarget, peer: PodTarget) -> Record:
    record = Record("ping", source.key, source.node, "fail", "", detail={"peer": peer.key})
    if not peer.ips:
        return dataclasses.replace(record, observed=f"{peer.key} has no pod IP in its status",
                                   reason=f"cannot ping {peer.key}: no pod IP in its status")
    address = peer.ips[0]
    ran = await run_in(run, source.namespace, source.name, (*PING, address))
    summary = parse_ping(ran.stdout)
    said = f"ping {address} ({peer.key} on {peer.node}): "
    detail = {"peer": peer.key, "address": address,
              **({"transmitted": summary.transmitted, "received": summary.received} if summary else {})}
    if summary is not None and summary.received > 0 and not ran.error:
        return dataclasses.replace(record, status="pass", observed=said + summary.describe(), detail=detail)
    observed = said + (summary.describe() if summary else ran.error)
    return dataclasses.replace(record, observed=observed, reason=observed, detail=detail)


# --- (3) flows ---------------------------------------------------------------------------------------------------


def flow_json(flow: DatapathFlow) -> dict[str, Any]:
    return {"ufid": flow.ufid, "match": dict(flow.match), "packets": flow.packets, "bytes": flow.bytes,
            "used": flow.used, "offloaded": flow.is_offloaded, "dp": flow.dp, "actions": flow.actions}


async def flows_checks(run: PodExec, node: NodeView, targets: Sequence[PodTarget], namespace: str) -> list[Record]:
    """One record per pod on `node`, from one `dump-flows` in the node's config-daemon pod."""
    def failed(why: str) -> list[Record]:
        return [Record("flows", t.key, node.name, "fail", why, reason=why) for t in targets]

    if not node.daemon_pod:
        label = "=".join(CONFIG_DAEMON_LABEL)
        return failed(f"no Running config-daemon pod ({label} in {namespace}) on node {node.name}")
    ran = await run_in(run, namespace, node.daemon_pod, DUMP_FLOWS, container=CONFIG_DAEMON_CONTAINER)
    if ran.error:
        return failed(ran.error)
    try:
        flows = parse_dump_flows(ran.stdout)
    except FlowParseError as err:
        return failed(f"{' '.join(DUMP_FLOWS)} in {namespace}/{node.daemon_pod}: {err}")
    return [_pod_flows(node, target, flows) for target in targets]


def _pod_flows(node: NodeView, target: PodTarget, flows: Sequence[DatapathFlow]) -> Record:
    addresses = [a for a in (target.mac, *target.ips) if a]
    mine = [f for f in flows if f.touches(addresses)]
    offloaded = [f for f in mine if f.is_offloaded]
    layers = sorted({f.dp or "?" for f in mine})
    observed = (f"{len(mine)} of {len(flows)} datapath flows match {' / '.join(addresses) or '(no address)'}; "
                f"{len(offloaded)} offloaded:yes; dp:{','.join(layers) or '-'}")
    record = Record("flows", target.key, node.name, "fail", observed, expected="flows of the pod offloaded:yes, dp:tc",
                    detail={"flows": [flow_json(f) for f in mine]})
    if not mine:
        return dataclasses.replace(record, reason=(
            f"no datapath flow on node {node.name} matches the pod's MAC/IP ({observed})"))
    if offloaded:
        return dataclasses.replace(record, status="pass")
    if node.model is not None and layers == [node.model.datapath]:
        return dataclasses.replace(record, status="simulated", model=node.model.flows_view(),
                                   reason="nothing offloaded: the simulated node's userspace datapath")
    return dataclasses.replace(record, reason=f"none of the pod's {len(mine)} datapath flows is offloaded ({observed})")


# --- all of it ---------------------------------------------------------------------------------------------------


async def verify(run: PodExec, targets: Sequence[PodTarget], nodes: Mapping[str, NodeView],
                 namespace: str) -> list[Record]:
    """Every check on every target; `namespace` is where the config-daemon pods run."""
    limit = asyncio.Semaphore(PARALLEL)

    async def bounded(step: Awaitable[T]) -> T:
        async with limit:
            return await step

    records = [Record("driver", t.key, t.node, "fail", f"pod is {t.phase or 'not running'}",
                      reason=f"pod is {t.phase or 'not running'}, not Running") for t in targets
               if t.phase != "Running"]
    running = [t for t in targets if t.phase == "Running"]
    running = list(await asyncio.gather(*(bounded(resolve(run, t)) for t in running)))
    records += await asyncio.gather(*(bounded(driver_check(run, t, nodes[t.node])) for t in running))
    records += await asyncio.gather(*(bounded(ping_check(run, s, p)) for s in running for p in running if p != s))
    by_node: dict[str, list[PodTarget]] = {}
    for target in running:
        by_node.setdefault(target.node, []).append(target)
    for node_records in await asyncio.gather(*(
            bounded(flows_checks(run, nodes[name], pods, namespace)) for name, pods in sorted(by_node.items()))):
        records += node_records
    return records
