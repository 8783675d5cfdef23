"""How long one `kubeexec.exec_in_pod` takes end to end: TLS to the embedded API server, RBAC, the WebSocket
relayed to a kubelet streaming server, `true` started in a process, its status back. `vdpactl verify` makes a few
of these per pod, so the goal is a p50 under 100 ms (its checks over two pods then cost well under a second).

    .venv/bin/python bench/exec_roundtrip.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
from common import percentile, verdict

from vdpa_operator.kubeexec import exec_in_pod
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.sim.kubelet import streaming
from vdpa_operator.sim.kubelet.streaming import ContainerView

GOAL_P50 = 0.100
MERGE = {"Content-Type": "application/merge-patch+json"}


class OnePod:
    def locate(self, namespace: str, pod: str, container: str) -> ContainerView | None:
        return ContainerView(None, None, {"PATH": os.environ["PATH"]}) if pod == "bench" else None


def _objects(api: ServerHandle, port: int) -> None:
    with httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify) as http:
        http.post("/api/v1/nodes", json={"metadata": {"name": "bench-node"}}).raise_for_status()
        http.patch("/api/v1/nodes/bench-node/status", headers=MERGE, json={"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}).raise_for_status()
        http.post("/api/v1/namespaces/default/pods", json={"metadata": {"name": "bench"}, "spec": {
            "nodeName": "bench-node", "containers": [{"name": "main", "image": "sim"}]}}).raise_for_status()
        http.patch("/api/v1/namespaces/default/pods/bench/status", headers=MERGE,
                   json={"status": {"phase": "Running"}}).raise_for_status()


async def _measure(api: ServerHandle, calls: int) -> list[float]:
    kubelet = await streaming.start(OnePod(), api.kubelet_token)
    try:
        _objects(api, kubelet.port)
        await exec_in_pod(api.kubeconfig_path, "default", "bench", ["true"])  # warm-up
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            result = await exec_in_pod(api.kubeconfig_path, "default", "bench", ["true"])
            times.append(time.perf_counter() - started)
            assert result.exit_code == 0
        return times
    finally:
        await kubelet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    calls = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(Path(tmp) / "kubeconfig") as api:
        times = asyncio.run(_measure(api, calls))
    p50, p95 = percentile(times, 50), percentile(times, 95)
    print(f"exec_in_pod round trip over {calls} calls: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    print(f"goal: p50 < {GOAL_P50 * 1000:.0f} ms: {verdict(p50 < GOAL_P50)}")


if __name__ == "__main__":
    main()
