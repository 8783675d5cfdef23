"""verify end to end: read the cluster, run the checks, hand back the records. The CLI only wires a `PodExec`
and prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vdpa_operator.kubeclient import connect_client
from vdpa_operator.verify.checks import verify
from vdpa_operator.verify.cluster_view import Plan, read_plan
from vdpa_operator.verify.podexec import PodExec
from vdpa_operator.verify.report import Record


@dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    records: list[Record]

    def nothing_to_check(self) -> str:
        """Why no check ran ("" when some did)."""
        if self.records:
            return ""
        advertised = ", ".join(sorted(self.plan.vdpa_resources)) or "none (no NodeState has a virtio vfGroup)"
        return f"no pod to verify: no running pod requests a vDPA resource (vDPA resources: {advertised})"


async def run_verify(kubeconfig: str | None, run: PodExec, *, operator_namespace: str, resource_prefix: str,
                     namespace: str | None = None, names: Sequence[str] = ()) -> Outcome:
    client = connect_client(kubeconfig, namespace or "default", "vdpactl-verify")
    try:
        plan = await read_plan(client, operator_namespace=operator_namespace, resource_prefix=resource_prefix,
                               namespace=namespace if namespace or not names else "default", names=names)
    finally:
        await client.close()
    return Outcome(plan, await verify(run, plan.targets, plan.nodes, operator_namespace))
