"""`vdpactl sim …`: the simulated cluster from the command line. `vdpactl sim up|status|down` start, show and
remove a whole cluster (`sim/cluster/`). `vdpactl sim apiserver` runs the embedded
Kubernetes-compatible API server in the foreground, with the project's CRDs, for kubectl, the operator and the
node daemon to talk to. Thin: parse flags, start the server, write a kubeconfig, wait for SIGINT/SIGTERM.

Exit codes: 0 stopped by a signal, 1 the server could not start (address in use), 2 bad flags or a data dir
it cannot use (a damaged file, another server on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from vdpa_operator.cli.common import EXIT_FAILED, on_stop_signals
from vdpa_operator.cli.common import fail as _fail
from vdpa_operator.deviceplugin.settings import DEVICE_PLUGIN_DIR

DEFAULT_KUBECONFIG = "vdpa-sim.kubeconfig"


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
    """The simulated cluster: an API server to run the operator, the daemon and kubectl against, and kubelet's
    device manager for device plugins."""


def _state_option(func: Any) -> Any:
    from vdpa_operator.sim.cluster.layout import default_state_dir

    return click.option("--state", "state", type=click.Path(file_okay=False, path_type=Path),
                        default=default_state_dir, show_default="$XDG_STATE_HOME/vdpa-operator/sim-cluster",
                        help="The cluster's state directory: its record, kubeconfig, logs and API server data.")(func)


@sim.command("up")
@click.option("--nodes", type=click.IntRange(1, 250), default=2, show_default=True, help="Worker nodes.")
@_state_option
@click.option("--deploy", "deploy_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="The manifests to apply with `kubectl apply -k` (default: deploy/ of this source tree).")
@click.option("--no-deploy", is_flag=True, help="Apply nothing: an empty cluster.")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds for each wait (API server, Nodes Ready, the operator's webhook).")
def up(nodes: int, state: Path, deploy_dir: Path | None, no_deploy: bool, timeout: float) -> None:
    """Start a simulated cluster and return once it is ready: the embedded API server; per node (worker-0, …) a
    network namespace, a simulated host with two ConnectX-6 Dx PFs, its own OVS with br-int, a kubelet; one flat
    L2 pod network (10.128.0.0/16, a /24 per node); deploy/ applied. Needs root. Prints the KUBECONFIG line.

    Interrupted (SIGINT/SIGTERM) or failing half-way, it removes what it made; `sim down` removes the rest."""
    from vdpa_operator.sim.cluster.bringup import Interrupted, UpOptions
    from vdpa_operator.sim.cluster.bringup import up as bring_up
    from vdpa_operator.sim.cluster.manifests import default_deploy_dir

    deploy = None if no_deploy else (deploy_dir or default_deploy_dir())
    if deploy is None and not no_deploy:
        _fail("no deploy/ beside this package (an installed wheel): pass --deploy DIR or --no-deploy")
    try:
        record = bring_up(UpOptions(state, nodes, deploy, timeout), lambda text: click.echo(f"up: {text}", err=True))
    except Interrupted as err:
        click.echo(f"error: {err}; removed what was made", err=True)
        sys.exit(128 + err.signum)
    kubeconfig = record.path.parent / "kubeconfig"
    click.echo(f"export KUBECONFIG={kubeconfig}")


@sim.command("status")
@_state_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(state: Path, output: str) -> None:
    """Per node: network namespace, OVS PIDs and br-int, kubelet PID and Ready, allocatable vDPA resources, pods."""
    import json

    from vdpa_operator.sim.cluster.layout import Layout
    from vdpa_operator.sim.cluster.record import Record
    from vdpa_operator.sim.cluster.status import render
    from vdpa_operator.sim.cluster.status import status as cluster_status

    layout = Layout.at(state)
    record = Record.load(layout.record)
    if record is None:
        _fail(f"no simulated cluster at {layout.state} (no record.json): `vdpactl sim up --state {state}`",
              EXIT_FAILED)
    result = cluster_status(layout, record)
    click.echo(json.dumps(result.to_json(), indent=2) if output == "json" else render(result))


@sim.command("down")
@_state_option
def down(state: Path) -> None:
    """Stop and remove everything `sim up` made from this state dir (also after a failed or interrupted `up`):
    processes (by recorded PID, SIGTERM then SIGKILL), network namespaces with their links, OVS's and the nodes'
    directories, the kubeconfig and the record. Nothing to do when nothing runs."""
    from vdpa_operator.sim.cluster.layout import Layout
    from vdpa_operator.sim.cluster.record import Record, exclusive
    from vdpa_operator.sim.cluster.teardown import teardown

    layout = Layout.at(state)
    record = Record.load(layout.record)
    if record is None:
        click.echo(f"down: nothing recorded at {layout.state}: nothing to remove")
        return
    with exclusive(layout.state, "sim down"):
        record = Record.load(layout.record)  # as the holder before us left it
        if record is None:
            click.echo(f"down: nothing recorded at {layout.state}: nothing to remove")
            return
        removed = teardown(layout, record)
    click.echo(f"down: removed {removed.summary()}")
    if removed.problems:
        for problem in removed.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"error: the record {layout.record} is kept: run `vdpactl sim down` again once fixed", err=True)
        sys.exit(EXIT_FAILED)


@sim.command("apiserver")
@click.option("--bind-address", "--host", "host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every IPv4 interface; only this machine can connect by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=6443, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the cluster's objects, the admin token and the token-signing key in this directory across "
                   "restarts (default: memory only).")
@click.option("--kubeconfig", "kubeconfig_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_KUBECONFIG, show_default=True,
              help="Write a kubeconfig for this server here (mode 0600: it holds the admin token).")
@click.option("--tls/--no-tls", default=True, show_default=True,
              help="Serve HTTPS with the server's own CA (its certificate goes into the kubeconfig). kubectl sends "
                   "no token over plain HTTP, so --no-tls is for other clients only.")
@click.option("--webhook-service", "webhook_services", multiple=True, metavar="NAMESPACE/NAME=HOST:PORT",
              help="Where an admission webhook's clientConfig.service listens (repeatable; default: 127.0.0.1 "
                   "and the service port).")
def apiserver(host: str, port: int, data_dir: Path | None, kubeconfig_path: Path, tls: bool,
              webhook_services: tuple[str, ...]) -> None:
    """Run the simulated API server in the foreground until SIGINT or SIGTERM.

    Every request needs a bearer token: the kubeconfig's is the admin's (system:masters); `kubectl create token
    SA` gives a ServiceAccount's, which RBAC (the stored Roles and bindings) limits as a cluster would."""
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
    from vdpa_operator.sim.apiserver import default_store, start, write_kubeconfig
    from vdpa_operator.sim.apiserver.credentials import Credentials
    from vdpa_operator.sim.apiserver.persist import DataDirError

    try:
        store = default_store(persist_dir=data_dir)
        credentials = Credentials.load_or_create(data_dir)
    except DataDirError as err:
        _fail(str(err))  # a damaged or foreign file: bad input, the message says what to do
    except (OSError, ValueError) as err:
        _fail(f"--data-dir {data_dir}: {err}", EXIT_FAILED)
    try:
        server = await start(store, host, port, tls=tls, webhook_services=services, credentials=credentials)
    except OSError as err:
        _close(store)
        _fail(f"cannot listen on {host}:{port}: {err.strerror or err}", EXIT_FAILED)
    write_kubeconfig(kubeconfig_path, server.kubeconfig())

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_stop_signals(loop, stopping.set)
    click.echo(f"vdpa-sim API server listening on {server.url} (data: {data_dir or 'memory only'}); use it with: "
               f"export KUBECONFIG={kubeconfig_path}; kubectl get sriovnetworknodepolicies -A")
    sys.stdout.flush()
    try:
        await stopping.wait()
    finally:
        await server.stop()
        _close(store)
    click.echo("vdpa-sim API server stopped", err=True)


@sim.command("device-manager")
@click.option("--device-plugin-path", type=click.Path(file_okay=False, path_type=Path),
              default=DEVICE_PLUGIN_DIR, show_default=True,
              help="Where kubelet.sock is served (legacy registrations) and plugins put their sockets.")
@click.option("--plugins-registry", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also watch this plugin-watcher directory for plugin sockets.")
@click.option("--expect", "expected", multiple=True, metavar="RESOURCE",
              help="Exit 0 once each of these resources has listed its devices (1 after --timeout).")
@click.option("--allocate", "to_allocate", multiple=True, metavar="RESOURCE",
              help="Once it lists a healthy device, Allocate one and print the answer (repeatable).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="With --expect.")
def device_manager(device_plugin_path: Path, plugins_registry: Path | None, expected: tuple[str, ...],
                   to_allocate: tuple[str, ...], timeout: float) -> None:
    """Play kubelet's device manager: take device plugin registrations over real gRPC and print what each
    resource lists (and, with --allocate, what Allocate gives a container). Runs until SIGINT/SIGTERM."""
    sys.exit(asyncio.run(_device_manager(device_plugin_path, plugins_registry, expected, to_allocate, timeout)))


async def _device_manager(directory: Path, registry: Path | None, expected: tuple[str, ...],
                          to_allocate: tuple[str, ...], timeout: float) -> int:
    from vdpa_operator.sim.kubelet.devicemanager import DeviceManager

    manager = DeviceManager(directory, registry)
    await manager.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_stop_signals(loop, stopping.set)
    click.echo(f"kubelet device manager on {manager.socket}" + (f", watching {registry}" if registry else ""))
    shown: dict[str, int] = {}
    allocated: set[str] = set()
    deadline = loop.time() + timeout
    try:
        while not stopping.is_set():
            for name, endpoint in sorted(manager.endpoints.items()):
                if not endpoint.updates or shown.get(name) == endpoint.updates:
                    continue
                shown[name] = endpoint.updates
                devices = ", ".join(f"{i} {h}" + (f" numa {','.join(map(str, n))}" if n else "")
                                    for i, (h, n) in sorted(endpoint.devices.items())) or "none"
                click.echo(f"{name}: {len(endpoint.devices)} devices: {devices}")
                if name in to_allocate and name not in allocated and endpoint.healthy():
                    allocated.add(name)
                    await _show_allocation(manager, name, endpoint.healthy()[0])
            unlisted, unallocated = set(expected) - set(shown), set(to_allocate) - allocated
            if expected and not unlisted and not unallocated:
                return 0
            if expected and loop.time() > deadline:
                missing = [f"not listed: {', '.join(sorted(unlisted))}"] if unlisted else []
                missing += [f"no healthy device to allocate: {', '.join(sorted(unallocated))}"] if unallocated else []
                click.echo(f"error: within {timeout:g}s, {'; '.join(missing)}", err=True)
                return EXIT_FAILED
            async with manager.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(manager.changed.wait(), 0.2)
        return 0
    finally:
        await manager.stop(wipe=False)  # leaving is not a kubelet restart: the plugins' sockets are theirs


async def _show_allocation(manager: Any, resource: str, device_id: str) -> None:
    answer = (await manager.allocate(resource, [[device_id]])).container_responses[0]
    click.echo(f"{resource}: Allocate {device_id} →")
    for key, value in sorted(answer.envs.items()):
        click.echo(f"  env {key}={value}")
    for spec in answer.devices:
        click.echo(f"  device {spec.host_path} → {spec.container_path} ({spec.permissions})")
    for key, value in sorted(answer.annotations.items()):
        click.echo(f"  annotation {key}: {value}")


def _close(store: Any) -> None:
    """Write out persisted state (stores without persistence have nothing to close)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


@sim.command("kubelet")
@click.option("--node-name", required=True, help="The Node this kubelet registers and runs pods for.")
@click.option("--kubeconfig", "kubeconfig_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The API server to register with (the simulated cluster's kubeconfig).")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="This node's filesystem: kubelet's directories and every hostPath live under it.")
@click.option("--node-netns", required=True, metavar="NS",
              help="The network namespace standing for the node (hostNetwork pods run there).")
@click.option("--pod-cidr", metavar="CIDR", default=None, help="The node's spec.podCIDR.")
@click.option("--cni-bin-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The node's CNI plugin directory (CNI_PATH; the node's /opt/cni/bin) [default: ROOT/opt/cni/bin].")
@click.option("--streaming-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="The port of this kubelet's exec/log server on 127.0.0.1 (0: a free one; the Node's "
                   "status.daemonEndpoints.kubeletEndpoint.Port says which).")
@click.option("--schedule/--no-schedule", default=True, show_default=True,
              help="Also bind pending pods to nodes (a minimal scheduler; several kubelets may run it).")
@click.option("--container-env", "container_env", multiple=True, metavar="NAME=VALUE",
              help="A variable every container and CNI plugin of this node gets, over the pod's own (repeatable).")
@click.option("--kubelet-token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The API server's kubelet-client token: the only caller the exec/log server answers.")
@click.option("--webhook-service", "webhook_services", multiple=True, metavar="NAMESPACE/NAME=HOST:PORT",
              help="Where the API server calls a webhook Service: relayed into its pod when that runs here.")
def kubelet(node_name: str, kubeconfig_path: Path, root: Path, node_netns: str, pod_cidr: str | None,
            cni_bin_dir: Path | None, streaming_port: int, schedule: bool, container_env: tuple[str, ...],
            kubelet_token_file: Path | None, webhook_services: tuple[str, ...]) -> None:
    """Run a small kubelet for one simulated node until SIGINT/SIGTERM: registers the Node and keeps it Ready,
    takes device plugin registrations, runs the pods bound to the node (network namespace, the default network's
    CNI as Multus, the containers' commands as host processes) and, on the way out, stops them all and cleans up.
    Needs root."""
    import ipaddress
    import os

    from vdpa_operator.cli.common import configure_logging

    if not kubeconfig_path.is_file():
        raise click.BadParameter(f"{kubeconfig_path}: no such file", param_hint="--kubeconfig")
    if pod_cidr is not None:
        try:
            ipaddress.ip_network(pod_cidr, strict=False)
        except ValueError as err:
            raise click.BadParameter(f"{pod_cidr!r}: {err}", param_hint="--pod-cidr") from None
    if not Path("/var/run/netns", node_netns).exists():
        raise click.BadParameter(f"network namespace {node_netns!r} does not exist (ip netns add {node_netns})",
                                 param_hint="--node-netns")
    if os.geteuid() != 0:
        _fail("the kubelet needs root (network namespaces, mount namespaces, CNI)")
    root = root.absolute()
    bin_dir = (cni_bin_dir or root / "opt/cni/bin").absolute()
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = tuple(_pair(item, "--container-env") for item in container_env)
    services = tuple((f"{ns}/{name}", address) for (ns, name), address in _parse_services(webhook_services).items())
    configure_logging()
    asyncio.run(_kubelet(node_name, kubeconfig_path.absolute(), root, node_netns, pod_cidr, bin_dir, streaming_port,
                         schedule, env, kubelet_token_file.absolute() if kubelet_token_file else None, services))


def _pair(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint=flag)
    return name, value


async def _kubelet(node_name: str, kubeconfig: Path, root: Path, node_netns: str, pod_cidr: str | None,
                   cni_bin_dir: Path, streaming_port: int, schedule: bool, container_env: tuple[tuple[str, str], ...],
                   token_file: Path | None, webhook_services: tuple[tuple[str, str], ...]) -> None:
    from vdpa_operator.kubeclient import ClusterError
    from vdpa_operator.sim.kubelet.service import Kubelet
    from vdpa_operator.sim.kubelet.settings import KubeletSettings

    settings = KubeletSettings(node_name=node_name, kubeconfig=kubeconfig, root=root, node_netns=node_netns,
                               pod_cidr=pod_cidr, cni_bin_dir=cni_bin_dir, streaming_port=streaming_port,
                               schedule=schedule, container_env=container_env, kubelet_token_file=token_file,
                               webhook_services=webhook_services)
    stopping = asyncio.Event()
    on_stop_signals(asyncio.get_running_loop(), stopping.set)
    try:
        service = Kubelet(settings)
    except ClusterError as err:
        _fail(f"--kubeconfig: {err}")
    try:
        click.echo(f"kubelet of node {node_name}: root {root}, CNI bin {cni_bin_dir}, node netns {node_netns}")
        sys.stdout.flush()
        await service.run(stopping)
    except ClusterError as err:
        _fail(str(err), EXIT_FAILED)
