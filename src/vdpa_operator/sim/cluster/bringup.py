"""`sim up`: the embedded API server, then per node a namespace, the simulated host, OVS and the wire, the relay
that puts the API server inside the node namespaces, the controller manager (DaemonSets and Deployments become
pods), a kubelet per node; the Nodes labelled and Ready, deploy/
applied. Every resource is recorded as it is made (record.py); a failure or SIGINT/SIGTERM half-way removes
exactly what was made (teardown.py) before `up` exits.

Signals are held while a resource is being made and its record written, and acted on at the next stage or poll
(`Guard.check`), so an interruption never falls between making a thing and recording it. For tests, the
environment variable `VDPA_SIM_UP_INTERRUPT_AT=<stage>` makes `up` send itself SIGINT on reaching that stage
(one of STAGES): the same path a Ctrl-C takes, at a known point; unset, it does nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.fileio import write_atomically
from vdpa_operator.sim.cluster import manifests, network, nodes, ovs
from vdpa_operator.sim.cluster.apiclient import AdminClient, ready
from vdpa_operator.sim.cluster.layout import MAX_NODES, Layout
from vdpa_operator.sim.cluster.processes import alive, spawn
from vdpa_operator.sim.cluster.record import STATE_DIR, MadePath, Process, Record, exclusive
from vdpa_operator.sim.cluster.teardown import Removed, teardown

STAGES = ("apiserver", "node-netns", "node-host", "wire", "node-ovs", "forwarder", "controller-manager", "kubelet",
          "nodes-ready",
          "deploy", "ready")
INTERRUPT_AT_ENV = "VDPA_SIM_UP_INTERRUPT_AT"
WEBHOOK_SERVICE = "openshift-sriov-network-operator/operator-webhook-service"


class UpError(VdpaOperatorError):
    """`up` cannot go on: what, and what to do."""


class Interrupted(VdpaOperatorError):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True)
class UpOptions:
    state: Path
    nodes: int = 2
    deploy: Path | None = None
    """deploy/ to apply (None: apply nothing)."""
    timeout: float = 120.0
    """For each wait: the API server, the Nodes Ready, the operator's webhook."""


@dataclass
class Guard:
    """SIGINT/SIGTERM noted, and raised as `Interrupted` at the next check."""

    say: Callable[[str], None]
    signum: int = 0
    previous: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> Guard:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = self.signum or signum

    def stage(self, name: str) -> None:
        assert name in STAGES, name
        if os.environ.get(INTERRUPT_AT_ENV) == name:
            os.kill(os.getpid(), signal.SIGINT)
        self.check()
        self.say(name)

    def check(self) -> None:
        if self.signum:
            raise Interrupted(self.signum)


def up(options: UpOptions, say: Callable[[str], None]) -> Record:
    """Bring the cluster up; on any failure or interruption, remove what was made and raise."""
    layout = Layout.at(options.state)
    _preflight(layout, options)
    made_state = not layout.state.exists()
    layout.state.mkdir(parents=True, exist_ok=True)
    with exclusive(layout.state, "sim up"), Guard(say) as guard:
        try:
            _preflight(layout, options)  # again, holding the state dir: another `up` may have won the race
        except UpError:
            if made_state and not any(layout.state.iterdir()):
                layout.state.rmdir()
            raise
        record = _new_record(layout, options.nodes, made_state)
        try:
            _bring_up(guard, layout, record, options, say)
        except BaseException as err:
            say(f"{'interrupted' if isinstance(err, Interrupted | KeyboardInterrupt) else 'failed'}: "
                "removing what was made")
            removed = teardown(layout, record)
            say(f"removed {removed.summary()}")
            _raise_leftovers(removed)
            raise
    return record


def _preflight(layout: Layout, options: UpOptions) -> None:
    if not 1 <= options.nodes <= MAX_NODES:
        raise UpError(f"--nodes {options.nodes}: between 1 and {MAX_NODES}")
    if os.geteuid() != 0:
        raise UpError("sim up needs root: it creates network namespaces, veth pairs and OVS bridges")
    problem = ovs.missing()
    if problem:
        raise UpError(problem)
    if layout.record.exists():
        raise UpError(f"{layout.record} exists: a cluster runs from {layout.state} (or one was interrupted); "
                      f"run `vdpactl sim down --state {layout.state}` first")
    leftovers = network.ours(layout)
    if leftovers:
        raise UpError(f"network namespaces {', '.join(leftovers)} exist without a record; delete them "
                      "(`ip netns del NAME`) before `up`")


def _new_record(layout: Layout, count: int, made_state: bool) -> Record:
    record = Record(layout.record, nodes=count)
    if made_state:
        record.entries.append(MadePath(str(layout.state), STATE_DIR))
    record.save()
    return record


def _bring_up(guard: Guard, layout: Layout, record: Record, options: UpOptions, say: Callable[[str], None]) -> None:
    guard.stage("apiserver")
    apiserver, port = _start_apiserver(guard, layout, record, options.timeout)
    record.add(MadePath(str(layout.runtime), "dir"))
    layout.runtime.mkdir(parents=True)
    members = layout.nodes(options.nodes)
    guard.stage("node-netns")
    for node in members:
        network.make_netns(record, node.netns)
    guard.stage("node-host")
    for node in members:
        nodes.make_root(record, layout, node)
        nodes.make_host(node)
        guard.check()
    guard.stage("wire")
    network.make_wire(record, layout)
    guard.stage("node-ovs")
    for node in members:
        nodes.make_switch(record, layout, node)
        guard.check()
    guard.stage("forwarder")
    _start_forwarder(guard, layout, record, port, [node.netns for node in members], options.timeout)
    with AdminClient(layout.kubeconfig) as client:
        manifests.publish_cluster_facts(client, record.settings, members)
    guard.stage("controller-manager")
    _start_controller_manager(guard, layout, record, options.timeout)
    guard.stage("kubelet")
    _write_kubelet_token(layout, record)
    kubelets = _start_kubelets(layout, record, members, say)
    guard.stage("nodes-ready")
    with AdminClient(layout.kubeconfig) as client:
        if kubelets:
            _nodes_ready(guard, client, members, [*kubelets, apiserver], options.timeout)
    guard.stage("deploy")
    if options.deploy is not None:
        manifests.apply_deploy(layout.kubeconfig, options.deploy)
        say(f"applied {options.deploy}")
    guard.stage("ready")
    if options.deploy is not None and kubelets:
        with AdminClient(layout.kubeconfig) as client:
            _wait(guard, "deploy/'s DaemonSets and Deployment to have their pods ready", lambda: _rolled_out(client),
                  [*kubelets, apiserver], options.timeout, interval=0.5)
        say("deploy/'s pods are ready")
        _apply_sample_config(guard, layout, options, say)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_apiserver(guard: Guard, layout: Layout, record: Record, timeout: float) -> tuple[Process, int]:
    record.add(MadePath(str(layout.logs), "dir"))
    record.add(MadePath(str(layout.apiserver_dir), "dir"))
    record.add(MadePath(str(layout.kubeconfig), "file"))
    webhook = f"127.0.0.1:{_free_port()}"
    process = spawn(record, "apiserver", "", [
        sys.executable, "-m", "vdpa_operator.cli", "sim", "apiserver", "--port", "0",
        "--data-dir", str(layout.apiserver_dir), "--kubeconfig", str(layout.kubeconfig),
        "--webhook-service", f"{WEBHOOK_SERVICE}={webhook}"], layout.logs / "apiserver.log")

    def serving() -> bool:
        if not layout.kubeconfig.exists():
            return False
        with AdminClient(layout.kubeconfig) as client:
            return client.healthy()

    _wait(guard, "the API server to serve", serving, [process], timeout)
    url = AdminClient(layout.kubeconfig).url
    port = urlsplit(url).port or 443
    record.set(apiserver=url, webhook_services={WEBHOOK_SERVICE: webhook})
    return process, port


def _start_forwarder(guard: Guard, layout: Layout, record: Record, port: int, namespaces: list[str],
                     timeout: float) -> None:
    log = layout.logs / "forwarder.log"
    listen = [arg for name in namespaces for arg in ("--listen", f"{name}=127.0.0.1:{port}")]
    process = spawn(record, "forwarder", "", [sys.executable, "-m", "vdpa_operator.sim.cluster.forwarder",
                                              *listen, "--connect", f"127.0.0.1:{port}"], log)
    _wait(guard, "the API server relay into the node namespaces",
          lambda: log.exists() and "relaying" in log.read_text(), [process], timeout)


def _start_controller_manager(guard: Guard, layout: Layout, record: Record, timeout: float) -> None:
    log = layout.logs / "controller-manager.log"
    process = spawn(record, "controller-manager", "", [
        sys.executable, "-m", "vdpa_operator.sim.cluster.controllermanager", "--kubeconfig", str(layout.kubeconfig)],
        log)
    _wait(guard, "the controller manager", lambda: log.exists() and "running" in log.read_text(), [process], timeout)


def _write_kubelet_token(layout: Layout, record: Record) -> None:
    """The token the API server shows kubelets when it proxies exec and logs, for the kubelets only."""
    from vdpa_operator.sim.apiserver.credentials import Credentials
    from vdpa_operator.sim.apiserver.proxy import kubelet_client_token

    record.add(MadePath(str(layout.kubelet_token), "file"))
    token = kubelet_client_token(Credentials.load_or_create(layout.apiserver_dir))
    write_atomically(layout.kubelet_token, token.encode(), mode=0o600)


def _start_kubelets(layout: Layout, record: Record, members: list[Any], say: Callable[[str], None]) -> list[Process]:
    if not nodes.kubelet_available():
        say("`vdpactl sim kubelet` is not in this vdpactl: the nodes have their namespace, simulated host, OVS "
            "and wire, but no kubelet, so no Node registers and no pod runs")
        return []
    started = []
    ports = {}
    for node in members:
        ports[node.name] = _free_port()
        started.append(nodes.start_kubelet(record, layout, node, ports[node.name],
                                           dict(record.settings.get("webhook_services") or {})))
    record.set(streaming_ports=ports)
    return started


def _nodes_ready(guard: Guard, client: AdminClient, members: list[Any], watched: list[Process],
                 timeout: float) -> None:
    labelled: set[str] = set()

    def all_ready() -> bool:
        found = client.nodes()
        for node in members:
            if node.name in found and node.name not in labelled:
                manifests.label_node(client, node)
                labelled.add(node.name)
        return all(name in found and ready(found[name]) == "True" for name in (node.name for node in members))

    _wait(guard, f"Nodes {', '.join(node.name for node in members)} to register and be Ready", all_ready,
          watched, timeout)


def _rolled_out(client: AdminClient) -> bool:
    """Every DaemonSet and Deployment has as many ready pods as it wants (what `kubectl rollout status` waits
    for; the controller manager writes these numbers)."""
    for ds in client.items("/apis/apps/v1/daemonsets"):
        status = ds.get("status") or {}
        if "desiredNumberScheduled" not in status or status.get("numberReady") != status["desiredNumberScheduled"]:
            return False
    for deployment in client.items("/apis/apps/v1/deployments"):
        wanted = deployment.get("spec", {}).get("replicas", 1)
        if (deployment.get("status") or {}).get("readyReplicas", 0) != wanted:
            return False
    return True


def _nics_reported(client: AdminClient, count: int) -> bool:
    states = client.items("/apis/sriovnetwork.openshift.io/v1/sriovnetworknodestates")
    return len([s for s in states if (s.get("status") or {}).get("interfaces")]) >= count


def _apply_sample_config(guard: Guard, layout: Layout, options: UpOptions, say: Callable[[str], None]) -> None:
    assert options.deploy is not None
    last: list[str] = []

    def admitted() -> bool:
        result = manifests.apply_sample_config(layout.kubeconfig, options.deploy)  # type: ignore[arg-type]
        last[:] = [(result.stderr or result.stdout).strip()]
        return result.returncode == 0

    try:
        _wait(guard, "the operator's webhook to admit the SriovOperatorConfig", admitted, [], options.timeout,
              interval=1.0)
    except UpError:
        sample = options.deploy / manifests.SAMPLE_CONFIG
        say(f"the SriovOperatorConfig was not admitted within {options.timeout:g} s ({last[0] if last else ''}); "
            f"the operator reconciles no policy until it is: kubectl apply -f {sample}")
    else:
        say("SriovOperatorConfig default applied")
        with AdminClient(layout.kubeconfig) as client:
            _wait(guard, "every node's SriovNetworkNodeState to report its NICs (the webhook checks a policy "
                  "against them)", lambda: _nics_reported(client, options.nodes), [], options.timeout, interval=0.3)
        say("the nodes' NICs are reported")


def _wait(guard: Guard, what: str, done: Callable[[], bool], watched: list[Process], timeout: float,
          interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        guard.check()
        try:
            if done():
                return
        except VdpaOperatorError:
            pass  # not yet: e.g. a kubeconfig being written, a server still starting
        for process in watched:
            if not alive(process):
                raise UpError(f"{process.describe()} exited while waiting for {what}{_tail(process)}")
        if time.monotonic() > deadline:
            raise UpError(f"waited {timeout:g} s for {what}" + "".join(_tail(p) for p in watched))
        time.sleep(interval)


def _tail(process: Process, lines: int = 5) -> str:
    """The end of a process's log, for an error that is printed after `up` removed the log with the rest."""
    try:
        text = Path(process.log).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- {process.describe()}, last lines of its log:\n" + "\n".join(text) if text else ""


def _raise_leftovers(removed: Removed) -> None:
    if removed.problems:
        raise UpError("could not remove everything: " + "; ".join(removed.problems)
                      + "; run `vdpactl sim down` again once fixed")
