"""`vdpactl sim …`: the simulated cluster from the command line. `vdpactl sim apiserver` runs the embedded
Kubernetes-compatible API server in the foreground, with the project's CRDs, for kubectl, the operator and the
node daemon to talk to. Thin: parse flags, start the server, write a kubeconfig, wait for SIGINT/SIGTERM.

Exit codes: 0 stopped by a signal, 1 the server could not start (address in use, unreadable data dir),
2 bad flags.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
DEFAULT_KUBECONFIG = "vdpa-sim.kubeconfig"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _parse_services(values: tuple[str, ...]) -> dict[tuple[str, str], str]:
    services: dict[tuple[str, str], str] = {}
    for value in values:
        service, _, address = value.partition("=")
        namespace, _, name = service.partition("/")
        host, _, port = address.rpartition(":")
        if not namespace or not name or not host or not port.isdigit():
            raise click.BadParameter(f"{value!r}: expected NAMESPACE/NAME=HOST:PORT, e.g. "
                                     "openshift-sriov-network-operator/operator-webhook-service=127.0.0.1:9443",
                                     param_hint="--webhook-service")
        services[(namespace, name)] = address
    return services


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def sim() -> None:
    """The simulated cluster: an API server to run the operator, the daemon and kubectl against."""


@sim.command("apiserver")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=6443, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the cluster's objects in this directory across restarts (default: memory only).")
@click.option("--kubeconfig", "kubeconfig_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_KUBECONFIG, show_default=True, help="Write a kubeconfig for this server here.")
@click.option("--tls/--no-tls", default=False, show_default=True,
              help="Serve HTTPS with a throwaway CA (its certificate goes into the kubeconfig).")
@click.option("--webhook-service", "webhook_services", multiple=True, metavar="NAMESPACE/NAME=HOST:PORT",
              help="Where an admission webhook's clientConfig.service listens (repeatable; default: 127.0.0.1 "
                   "and the service port).")
def apiserver(host: str, port: int, data_dir: Path | None, kubeconfig_path: Path, tls: bool,
              webhook_services: tuple[str, ...]) -> None:
    """Run the simulated API server in the foreground until SIGINT or SIGTERM."""
    services = _parse_services(webhook_services)
    kubeconfig_path = kubeconfig_path.absolute()
    if not kubeconfig_path.parent.is_dir():
        raise click.BadParameter(f"{kubeconfig_path.parent} is not a directory", param_hint="--kubeconfig")
    if data_dir is not None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            _fail(f"--data-dir {data_dir}: {err.strerror}", EXIT_FAILED)
    asyncio.run(_serve(host, port, data_dir, kubeconfig_path, tls, services))


async def _serve(host: str, port: int, data_dir: Path | None, kubeconfig_path: Path, tls: bool,
                 services: dict[tuple[str, str], str]) -> None:
    # Imported here: the simulator is not needed by the rest of vdpactl (and product code never imports it).
    from vdpa_operator.sim.apiserver import default_store, kubeconfig, start
    from vdpa_operator.tls import CertificateAuthority

    try:
        store = default_store(persist_dir=data_dir)
    except (OSError, ValueError) as err:
        _fail(f"--data-dir {data_dir}: {err}", EXIT_FAILED)
    ssl_context, ca = None, None
    if tls:
        ca = CertificateAuthority("vdpa-sim-apiserver-ca")
        ssl_context = ca.issue(sorted({host, "localhost", "127.0.0.1"} - {"0.0.0.0", "::"})).server_context()
    try:
        server = await start(store, host, port, ssl_context=ssl_context, webhook_services=services)
    except OSError as err:
        _close(store)
        _fail(f"cannot listen on {host}:{port}: {err.strerror or err}", EXIT_FAILED)
    config: dict[str, Any] = kubeconfig(server.url.replace("0.0.0.0", "127.0.0.1"))
    if ca is not None:
        config["clusters"][0]["cluster"]["certificate-authority-data"] = ca.bundle
    kubeconfig_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    kubeconfig_path.chmod(0o600)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    click.echo(f"vdpa-sim API server listening on {server.url} (data: {data_dir or 'memory only'}); use it with: "
               f"export KUBECONFIG={kubeconfig_path}; kubectl get sriovnetworknodepolicies -A")
    sys.stdout.flush()
    try:
        await stopping.wait()
    finally:
        await server.stop()
        _close(store)
    click.echo("vdpa-sim API server stopped", err=True)


def _close(store: Any) -> None:
    """Write out persisted state (stores without persistence have nothing to close)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()
