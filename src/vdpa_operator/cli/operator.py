"""`vdpactl operator`: the cluster-side controller, configured like upstream's (environment variables) with
flags for local runs against any API server, including `vdpactl sim apiserver`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import click

from vdpa_operator.cli.common import configure_logging as _configure_logging
from vdpa_operator.cli.common import fail as _fail
from vdpa_operator.cli.common import on_stop_signals
from vdpa_operator.controller.settings import OperatorSettings, SettingsError

CERT_SECRET = "operator-webhook-cert"


def _address(text: str, option: str) -> tuple[str, int]:
    """HOST:PORT; an empty HOST (`:8080`, as Go servers take it) is every interface, IPv4 and IPv6."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        _fail(f"{option} {text!r}: want HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any free port; :8080 every "
              "interface)")
    return host.removeprefix("[").removesuffix("]"), int(port)


@click.command("operator")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Kubeconfig file (default: $KUBECONFIG, the in-cluster service account, ~/.kube/config).")
@click.option("--namespace", envvar="NAMESPACE", default=None, help="Operator namespace [env NAMESPACE].")
@click.option("--resource-prefix", envvar="RESOURCE_PREFIX", default=None,
              help="Device-plugin resource prefix [env RESOURCE_PREFIX; default openshift.io].")
@click.option("--stale-node-state-cleanup-delay-minutes", "stale_delay",
              envvar="STALE_NODE_STATE_CLEANUP_DELAY_MINUTES", default=None,
              help="Minutes a NodeState outlives its node [env; default 30].")
@click.option("--dev-mode/--no-dev-mode", default=None,
              help="Admit NICs missing from the supported list [env DEV_MODE=TRUE].")
@click.option("--health-address", default="127.0.0.1:8080", show_default=True,
              help="HOST:PORT for /healthz, /readyz and /metrics (in a pod: :8080, every interface).")
@click.option("--webhook/--no-webhook", default=True, show_default=True, help="Serve the admission webhooks.")
@click.option("--webhook-address", default="127.0.0.1:6443", show_default=True,
              help="HOST:PORT of the HTTPS webhook listener (in a pod: :6443, every interface).")
@click.option("--webhook-url-host", default=None,
              help="Register the webhooks by URL https://HOST:PORT (local runs) instead of the in-cluster Service.")
@click.option("--cert-dir", type=click.Path(file_okay=False), default=None,
              help="Where the self-signed webhook certificates live [default: ./vdpa-operator-certs, or "
                   "/tmp/vdpa-operator-certs in a cluster].")
@click.option("--cert-secret", default=None,
              help="Secret (in the operator namespace) that shares the webhook certificate between replicas and "
                   "restarts [default: operator-webhook-cert in a cluster, none outside; '' for none].")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Run the controllers only while holding the Lease (safe with several replicas).")
def operator(kubeconfig: str | None, namespace: str | None, resource_prefix: str | None, stale_delay: str | None,
             dev_mode: bool | None, health_address: str, webhook: bool, webhook_address: str,
             webhook_url_host: str | None, cert_dir: str | None, cert_secret: str | None, leader_elect: bool) -> None:
    """Run the operator: policy sync, NodeState lifecycle, device-plugin ConfigMap, networks, drain, webhooks."""
    env = dict(os.environ)
    overrides = {"NAMESPACE": namespace, "RESOURCE_PREFIX": resource_prefix,
                 "STALE_NODE_STATE_CLEANUP_DELAY_MINUTES": stale_delay}
    env.update({k: v for k, v in overrides.items() if v is not None})
    if dev_mode is not None:
        env["DEV_MODE"] = "TRUE" if dev_mode else ""
    if stale_delay is not None and not stale_delay.isdigit():
        _fail(f"--stale-node-state-cleanup-delay-minutes {stale_delay!r}: want whole minutes >= 0")
    try:
        settings = OperatorSettings.from_env(env)
    except SettingsError as err:
        _fail(str(err))
    health = _address(health_address, "--health-address")
    webhook_options = None
    if webhook:
        from vdpa_operator.controller.webhook import WebhookOptions

        host, port = _address(webhook_address, "--webhook-address")
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        default_dir = Path("/tmp/vdpa-operator-certs") if in_cluster else Path("vdpa-operator-certs")
        if cert_secret is None:
            cert_secret = CERT_SECRET if in_cluster else ""
        webhook_options = WebhookOptions(host=host, port=port, local_url_host=webhook_url_host,
                                         cert_dir=Path(cert_dir) if cert_dir else default_dir,
                                         secret=cert_secret or None)
    _configure_logging()
    from vdpa_operator.controller.service import LeadershipLost, Operator, OperatorOptions
    from vdpa_operator.kubeclient import ClusterError

    options = OperatorOptions(kubeconfig=kubeconfig, settings=settings, health_address=health,
                              webhook=webhook_options, leader_election=leader_elect)
    try:
        asyncio.run(_run(Operator, options))
    except ClusterError as err:
        _fail(str(err))
    except LeadershipLost as err:
        raise SystemExit(f"vdpactl operator: {err}") from err
    except KeyboardInterrupt:
        pass


async def _run(operator_type: Any, options: Any) -> None:
    """Run until SIGTERM/SIGINT (a pod being stopped), then close the listeners and watches cleanly."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    on_stop_signals(loop, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await operator_type(options).run()
