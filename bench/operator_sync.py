"""The operator at scale: 1,000 nodes × 20 policies through the embedded API server over HTTP.

The API server runs in this process (a thread); the operator runs as `vdpactl operator` in its own process, so
its peak RSS (VmHWM) is the operator's alone. Every node reports two ConnectX-6 Dx PFs with its own MACs (so
nodes do not all render alike); the 20 policies each take a 2-VF range of the first PF with their own resource.

Figures:
  1. initial sync: from the operator's start until every NodeState carries all 20 VF groups;
  2. policy change: one policy's MTU changes → seconds until all 1,000 NodeStates show it;
  3. operator peak RSS (goal < 120 MB).

    .venv/bin/python bench/operator_sync.py [--nodes N] [--policies P]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType

from vdpa_operator.kubeclient import (
    NamespaceResource,
    NodeResource,
    NodeStateResource,
    OperatorConfigResource,
    PolicyResource,
)
from vdpa_operator.sim.apiserver import serve_in_thread

GOAL_RSS_MB = 120.0
NS = "openshift-sriov-network-operator"
CONCURRENCY = 16


def node(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"worker-{i:04d}",
                         "labels": {"kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": "",
                                    "feature.node.kubernetes.io/network-sriov.capable": "true",
                                    "kubernetes.io/hostname": f"worker-{i:04d}"}}}


def status(i: int) -> dict[str, Any]:
    def pf(port: int) -> dict[str, Any]:
        return {"name": f"ens1f{port}", "pciAddress": f"0000:65:00.{port}", "vendor": "15b3", "deviceID": "101d",
                "driver": "mlx5_core", "mac": f"0c:42:a1:{i >> 8 & 0xff:02x}:{i & 0xff:02x}:e{port}", "mtu": 1500,
                "linkSpeed": "100000 Mb/s", "linkType": "ETH", "linkAdminState": "up", "eSwitchMode": "legacy",
                "totalvfs": 64}
    return {"syncStatus": "Succeeded", "interfaces": [pf(0), pf(1)]}


def policy(j: int, mtu: int = 1500) -> dict[str, Any]:
    return {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
            "metadata": {"name": f"policy-{j:02d}", "namespace": NS},
            "spec": {"resourceName": f"res{j:02d}", "priority": 10, "numVfs": 40, "mtu": mtu,
                     "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
                     "nicSelector": {"vendor": "15b3", "pfNames": [f"ens1f0#{2 * j}-{2 * j + 1}"]},
                     "deviceType": "netdevice", "eSwitchMode": "switchdev", "vdpaType": "virtio",
                     "isRdma": False}}


async def gather_limited(calls: list[Any]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Any) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


async def seed(client: AsyncClient, nodes: int, policies: int) -> None:
    await client.create(NamespaceResource.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": NS}}))
    await client.create(OperatorConfigResource.from_dict({
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovOperatorConfig",
        "metadata": {"name": "default", "namespace": NS}, "spec": {}}))
    await gather_limited([client.create(NodeResource.from_dict(node(i))) for i in range(nodes)])

    async def state(i: int) -> None:
        name = f"worker-{i:04d}"
        await client.create(NodeStateResource.from_dict({
            "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
            "metadata": {"name": name, "namespace": NS}, "spec": {}}))
        await client.patch(NodeStateResource.Status, name, {"status": status(i)}, namespace=NS,
                           patch_type=PatchType.MERGE)

    await gather_limited([state(i) for i in range(nodes)])
    await gather_limited([client.create(PolicyResource.from_dict(policy(j))) for j in range(policies)])


async def count_states(client: AsyncClient, predicate: Any) -> int:
    return len([s async for s in client.list(NodeStateResource, namespace=NS) if predicate(s)])


async def wait_until(client: AsyncClient, predicate: Any, nodes: int, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await count_states(client, predicate) == nodes:
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    done = await count_states(client, predicate)
    raise SystemExit(f"only {done}/{nodes} NodeStates reached the expected spec within {timeout:.0f} s")


def groups(state: Any) -> int:
    interfaces = (state.get("spec") or {}).get("interfaces") or []
    return sum(len(i.get("vfGroups") or []) for i in interfaces)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sync_passes(port: int) -> tuple[int, float]:
    """How many policy sync passes the operator ran and their total seconds, from its /metrics histogram."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line.startswith("sriov_operator_policy_sync_duration_seconds_"))
    return (int(float(values.get("sriov_operator_policy_sync_duration_seconds_count", "0"))),
            float(values.get("sriov_operator_policy_sync_duration_seconds_sum", "0")))


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(nodes: int, policies: int, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="vdpa-bench-") as tmp, serve_in_thread(Path(tmp) / "kubeconfig") as srv:
        client = AsyncClient(KubeConfig.from_file(srv.kubeconfig_path), namespace=NS)
        started = time.perf_counter()
        await seed(client, nodes, policies)
        print(f"seeded {nodes} nodes with NodeState status and {policies} policies in "
              f"{time.perf_counter() - started:.1f} s")
        env = {**os.environ, "NAMESPACE": NS}
        health_port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdpa_operator.cli", "operator", "--kubeconfig", str(srv.kubeconfig_path),
             "--no-webhook", "--health-address", f"127.0.0.1:{health_port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "operator.log", "w"))  # noqa: SIM115
        try:
            initial = await wait_until(client, lambda s: groups(s) == policies, nodes, timeout)
            print(f"initial sync: all {nodes} NodeStates carry {policies} VF groups after {initial:.2f} s "
                  "(operator start included)")
            await client.patch(PolicyResource, "policy-00", {"spec": {"mtu": 9000}}, namespace=NS,
                               patch_type=PatchType.MERGE)
            change = await wait_until(
                client, lambda s: any(i.get("mtu") == 9000 for i in (s.get("spec") or {}).get("interfaces") or []),
                nodes, timeout)
            print(f"policy change → all {nodes} NodeStates updated: {change:.2f} s "
                  "(includes upstream's 1 s enqueue delay)")
            count, total = sync_passes(health_port)
            print(f"operator: {count} policy sync passes, {total / max(count, 1):.2f} s each on average "
                  "(render, diff, 1,000 writes and their Events)")
            rss = vm_hwm_mb(proc.pid)
            verdict = "ok" if rss < GOAL_RSS_MB else "OVER GOAL"
            print(f"operator peak RSS: {rss:.1f} MB (goal < {GOAL_RSS_MB:.0f} MB) {verdict}")
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
            await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    asyncio.run(main(args.nodes, args.policies, args.timeout))
