"""`vdpactl verify`: the seed's "Verify vDPA is Working" checks on a cluster (real or simulated), through the
Kubernetes API only. Exit 0 all passed (or simulated), 1 a check failed, 2 the cluster cannot be read."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import click

from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.cli.common import EXIT_BAD_INPUT, fail


@click.command("verify")
@click.argument("pods", nargs=-1, metavar="[POD]...")
@click.option("-n", "--namespace", default=None, help="Namespace of the PODs (default: every namespace when no POD "
              "is named, else `default`).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--kubeconfig", metavar="FILE", default=None,
              help="Default: $KUBECONFIG, the in-cluster service account, ~/.kube/config.")
@click.option("--operator-namespace", default=DEFAULT_NAMESPACE, show_default=True,
              help="Where the NodeStates and the config-daemon pods are.")
@click.option("--resource-prefix", default="openshift.io", show_default=True,
              help="The device plugin's resource prefix (the operator's RESOURCE_PREFIX).")
def verify(pods: Sequence[str], namespace: str | None, output: str, kubeconfig: str | None,
           operator_namespace: str, resource_prefix: str) -> None:
    """Check every pod holding a vDPA resource (or the PODs named): `ethtool -i eth0` shows virtio_net on
    vdpa:<its VF>, it pings the other pods, and its node's OVS datapath flows are offloaded (ovs-appctl
    dpctl/dump-flows -m in the node's config-daemon pod). On a simulated node, what hardware alone shows is
    marked `simulated`, printed with what the simulated host models."""
    from vdpa_operator.kubeclient import ClusterError
    from vdpa_operator.verify.report import exit_code, failures, to_json, to_table
    from vdpa_operator.verify.run import run_verify

    try:
        outcome = asyncio.run(run_verify(kubeconfig, _kube_exec(kubeconfig), operator_namespace=operator_namespace,
                                         resource_prefix=resource_prefix, namespace=namespace, names=pods))
    except ClusterError as err:
        # kubeclient words a connection failure for services that retry; this command does not.
        fail(f"cannot verify: {str(err).removesuffix('; will retry')}", EXIT_BAD_INPUT)
    records = outcome.records
    click.echo(to_json(records) if output == "json" else to_table(records))
    for line in failures(records) + ([outcome.nothing_to_check()] if not records else []):
        click.echo(f"verify: {line}", err=True)
    sys.exit(exit_code(records))


def _kube_exec(kubeconfig: str | None) -> Any:
    """`kubeexec.exec_in_pod` with the kubeconfig bound, imported at the first command run."""
    async def run(namespace: str, pod: str, command: Sequence[str], *, container: str | None = None,
                  timeout: float = 30.0) -> Any:
        from vdpa_operator.kubeexec import exec_in_pod

        return await exec_in_pod(kubeconfig, namespace, pod, command, container=container, timeout=timeout)

    return run
