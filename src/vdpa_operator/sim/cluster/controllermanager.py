"""The simulated cluster's kube-controller-manager, the part deploy/ needs: DaemonSets and Deployments become
pods (`workloads`), pods that are deleted come back, and each workload's status says how many are ready (what
`kubectl rollout status` reads). A process of its own, started by `sim up`; it polls the API server every
second, since a cluster of a few nodes has few objects and a missed watch event then costs one second at most.

Run as `python -m vdpa_operator.sim.cluster.controllermanager --kubeconfig FILE`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from vdpa_operator.sim.cluster.apiclient import AdminClient
from vdpa_operator.sim.cluster.workloads import WantedPod, daemonset_pods, deployment_pods, ready, reconcile

logger = logging.getLogger("vdpa-sim-controller-manager")
INTERVAL = 1.0


def sync(client: AdminClient) -> None:
    nodes = client.items("/api/v1/nodes")
    pods = client.items("/api/v1/pods")
    daemonsets = client.items("/apis/apps/v1/daemonsets")
    deployments = client.items("/apis/apps/v1/deployments")
    wanted: list[WantedPod] = []
    for ds in daemonsets:
        wanted += daemonset_pods(ds, nodes)
    for deployment in deployments:
        wanted += deployment_pods(deployment)
    owners = {w["metadata"]["uid"] for w in daemonsets + deployments}
    changes = reconcile(wanted, pods, owners)
    for namespace, name in changes.delete:
        client.delete(f"/api/v1/namespaces/{namespace}/pods/{name}")
        logger.info("deleted pod %s/%s", namespace, name)
    for want in changes.create:
        if client.create(f"/api/v1/namespaces/{want.namespace}/pods", want.body):
            logger.info("created pod %s/%s", want.namespace, want.name)
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        for ref in pod["metadata"].get("ownerReferences") or []:
            by_owner.setdefault(ref.get("uid", ""), []).append(pod)
    for ds in daemonsets:
        _status(client, ds, "daemonsets", len([w for w in wanted if w.owner_uid == ds["metadata"]["uid"]]),
                by_owner.get(ds["metadata"]["uid"], []))
    for deployment in deployments:
        _status(client, deployment, "deployments", deployment.get("spec", {}).get("replicas", 1),
                by_owner.get(deployment["metadata"]["uid"], []))


def _status(client: AdminClient, workload: dict[str, Any], plural: str, desired: int,
            pods: list[dict[str, Any]]) -> None:
    meta = workload["metadata"]
    count, ready_count = len(pods), len([p for p in pods if ready(p)])
    if plural == "daemonsets":
        status = {"desiredNumberScheduled": desired, "currentNumberScheduled": count, "numberReady": ready_count,
                  "numberAvailable": ready_count, "updatedNumberScheduled": count,
                  "numberUnavailable": max(desired - ready_count, 0), "numberMisscheduled": 0}
    else:
        status = {"replicas": count, "updatedReplicas": count, "readyReplicas": ready_count,
                  "availableReplicas": ready_count, "unavailableReplicas": max(desired - ready_count, 0)}
    status["observedGeneration"] = meta.get("generation", 1)
    current = workload.get("status") or {}
    if all(current.get(k) == v for k, v in status.items()):
        return
    client.patch(f"/apis/apps/v1/namespaces/{meta['namespace']}/{plural}/{meta['name']}/status", {"status": status})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per request, every second: noise
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("controller-manager running", flush=True)
    failing = ""
    with AdminClient(args.kubeconfig) as client:
        while not stop.is_set():
            try:
                sync(client)
                failing = ""
            except Exception as err:  # the API server restarting, a conflict: try again next round
                if str(err) != failing:
                    logger.warning("sync: %s", err)
                failing = str(err)
            stop.wait(INTERVAL)


if __name__ == "__main__":
    main()
