"""`vdpactl node …` (the daemon's work, one shot, no cluster) and `vdpactl node-daemon` (the long-running
agent). Thin: pick the Host adapter, read the NodeState file, call `daemon`, print, choose the exit code."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from vdpa_operator import inputs, yamlio
from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.api.decoding import FieldIssue
from vdpa_operator.api.models import SYNC_FAILED, SYNC_SUCCEEDED, SriovNetworkNodeState
from vdpa_operator.api.nodestate_checks import spec_problems
from vdpa_operator.cli.common import (
    EXIT_FAILED,
    OVSDB_ENV,
    configure_logging,
    open_host,
    sim_host_options,
)
from vdpa_operator.cli.common import fail as _fail
from vdpa_operator.cli.common import note as _note
from vdpa_operator.daemon.node import NodeAgent, status_patch
from vdpa_operator.daemon.observed import Observation
from vdpa_operator.daemon.plan import InvalidSpec, Plan, PlanError
from vdpa_operator.daemon.steps import Step, step_to_dict
from vdpa_operator.daemon.store import DEFAULT_ROOT, DaemonStore, StoreError
from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host


@dataclass
class HostChoice:
    """The `--host …` options of every node command, as one value."""

    host_kind: str
    sim_root: str
    store_dir: str | None
    ovsdb: str | None
    supported_nics: str | None
    dev_mode: bool
    sim_netns: str | None = None

    def agent(self) -> NodeAgent:
        try:
            nics = inputs.supported_nics(self.supported_nics)
        except inputs.InputError as err:
            _fail("; ".join(err.lines))
        host, store_root = self._host()
        return NodeAgent(host, DaemonStore(self.store_dir or store_root), nics, dev_mode=self.dev_mode)

    def _host(self) -> tuple[Host, str]:
        if self.host_kind == "linux":
            from vdpa_operator.host.linux.ovsdb import DEFAULT_REMOTE

            return open_host("linux", self.sim_root, self.ovsdb or DEFAULT_REMOTE), DEFAULT_ROOT
        host = open_host("sim", self.sim_root, self.ovsdb, self.sim_netns)  # a damaged state.json: DamagedState
        return host, str(Path(self.sim_root) / "etc" / "sriov-operator")


def host_options(func: Any) -> Any:
    options = [
        click.option("--store-dir", metavar="DIR", help=f"PF records and journal (default {DEFAULT_ROOT}; inside "
                     "the sim root with --host sim)."),
        click.option("--ovsdb", metavar="REMOTE", envvar=OVSDB_ENV, help="OVSDB remote, e.g. "
                     "unix:/var/run/openvswitch/db.sock (default: $VDPA_OVSDB, else that socket with --host linux; "
                     "none with --host sim)."),
        click.option("--supported-nics", metavar="FILE", help="supported-nic-ids ConfigMap or '<vendor> <pf> "
                     "<vf>' lines, replacing the built-in table."),
        click.option("--dev-mode", is_flag=True, help="Also manage unsupported NIC models (upstream DEV_MODE)."),
    ]
    for option in reversed(options):
        func = option(func)
    return sim_host_options(func)


def state_file_options(func: Any) -> Any:
    func = click.option("--node-name", help="Which NodeState of the file, when it holds several.")(func)
    return click.option("-f", "--filename", "path", required=True, metavar="FILE",
                        help="A SriovNetworkNodeState (e.g. `vdpactl render` output; other objects are ignored).")(func)


KILL_BEFORE_STEP_ENV = "VDPACTL_TEST_KILL_BEFORE_STEP"


def _kill_before_step(host: dict[str, Any]) -> int:
    """A test hook (tests/hostile/test_apply_kill.py): with `--host sim`, `node apply` SIGKILLs itself just before
    step N (1-based) of its plan runs, as a power cut between two steps would. 0 (never) with `--host linux`, so
    a stray variable cannot kill the apply of a real node."""
    value = os.environ.get(KILL_BEFORE_STEP_ENV, "")
    return int(value) if host["host_kind"] == "sim" and value.isdigit() else 0


def _observe(agent: NodeAgent) -> Observation:
    try:
        return agent.observe()
    except StoreError as exc:
        _fail(str(exc))
    except HostError as exc:
        _fail(f"discovery failed: {exc}", EXIT_FAILED)


def _read_state(path: str, node_name: str | None) -> SriovNetworkNodeState:
    """The NodeState to apply from a file that may hold other objects too (e.g. `vdpactl render` output)."""
    try:
        located = inputs.load([path], lenient=True)
    except inputs.InputError as err:
        _fail("; ".join(err.lines))
    try:
        states = inputs.only([o for o in located if o.decoded.model is SriovNetworkNodeState],
                             SriovNetworkNodeState, "-f")
    except inputs.InputError as err:
        _fail("; ".join(err.lines))
    if node_name:
        states = [s for s in states if s.name == node_name]
    if len(states) != 1:
        names = ", ".join(s.name for s in states) or "none"
        wanted = f" named {node_name}" if node_name else ""
        _fail(f"{path}: expected one SriovNetworkNodeState{wanted}, found {names}"
              + ("; choose one with --node-name" if len(states) > 1 else ""))
    issues = spec_problems(states[0].spec)  # what needs no node to tell; sriov_totalvfs is checked by the plan
    if issues:
        _invalid_spec(path, states[0], issues)
    return states[0]


def _invalid_spec(path: str, state: SriovNetworkNodeState, issues: Sequence[FieldIssue]) -> NoReturn:
    """Exit 2 naming each field the daemon cannot act on, with its file and line."""
    lines = _field_lines(path, state.name)
    what = f'{state.KIND} "{state.name}"'
    _fail("; ".join(f"{path}:{lines(issue)}: {what}: {issue}" if lines else f"{path}: {what}: {issue}"
                    for issue in issues))


def _field_lines(path: str, name: str) -> Callable[[FieldIssue], int] | None:
    """`issue → line` for the fields of the NodeState `name` in `path` (read again: only an error needs it); None
    when the file cannot be read again (standard input)."""
    if path == "-":
        return None
    for doc in yamlio.read_documents(path):
        for item, prefix in yamlio.iter_items(doc.value):
            if (isinstance(item, dict) and item.get("kind") == SriovNetworkNodeState.KIND
                    and (item.get("metadata") or {}).get("name") == name):
                return lambda issue, doc=doc, prefix=prefix: doc.line_of((*prefix, *issue.loc))
    return None


@click.group()
def node() -> None:
    """The node config daemon's work, once, without a cluster: discover, plan, apply."""


@node.command()
@host_options
@click.option("--node-name", default=lambda: os.environ.get("NODE_NAME") or os.uname().nodename)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def discover(node_name: str, output: str, **host: Any) -> None:
    """Print this node's SriovNetworkNodeState status as the daemon reports it."""
    choice = HostChoice(**host)
    agent = choice.agent()
    observed = _observe(agent)
    for text in observed.notes:
        _note(text)
    if not observed.interfaces:
        _note("no PF of a supported NIC found" + (" (try --host sim)" if choice.host_kind == "linux" else ""))
    status = _shown_status(observed, "", "")
    _print({"apiVersion": SriovNetworkNodeState.API_VERSION, "kind": SriovNetworkNodeState.KIND,
            "metadata": {"name": node_name, "namespace": DEFAULT_NAMESPACE}, "status": status}, output)


@node.command()
@host_options
@state_file_options
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def plan(path: str, node_name: str | None, output: str, **host: Any) -> None:
    """Print the steps that would bring this node to the NodeState's spec; change nothing."""
    state = _read_state(path, node_name)
    agent = HostChoice(**host).agent()
    planned = _plan(agent, path, state, _observe(agent))
    if output == "json":
        click.echo(json.dumps({"configure": planned.configure, "reset": planned.reset, "drain": planned.drain,
                               "notes": planned.notes, "steps": [step_to_dict(s) for s in planned.steps]}, indent=2))
        return
    _print_plan(planned)


def _plan(agent: NodeAgent, path: str, state: SriovNetworkNodeState, observed: Observation) -> Plan:
    if observed.interrupted:
        _note(f"an earlier apply was interrupted; re-checking {', '.join(observed.interrupted)} in full")
    try:
        return agent.plan(state.spec, observed)
    except InvalidSpec as exc:
        _invalid_spec(path, state, exc.issues)
    except PlanError as exc:
        _fail(f"cannot apply {state.name}: {exc}", EXIT_FAILED)


def _print_plan(planned: Plan) -> None:
    if not planned.steps:
        click.echo("nothing to do: the node matches the spec")
    for index, step in enumerate(planned.steps, 1):
        click.echo(f"{index:3d}. {step.describe()}")
    if planned.drain:
        click.echo("a drain is needed first (PFs with VFs change)")
    for text in planned.notes:
        _note(text)


@node.command()
@host_options
@state_file_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def apply(path: str, node_name: str | None, output: str, **host: Any) -> None:
    """Apply a NodeState's spec to this node now, printing each step, then print the resulting status.

    Exit 0 when the node converged (status Succeeded), 1 when a step failed (status Failed, with the step, the
    object and the errno), 2 when the input cannot be read or the spec holds a value the daemon cannot act on
    (each named by its field). Interrupted, it picks up where it stopped."""
    state = _read_state(path, node_name)
    agent = HostChoice(**host).agent()
    observed = _observe(agent)
    planned = _plan(agent, path, state, observed)
    for text in planned.notes:
        _note(text)
    if not planned.steps:
        click.echo("nothing to do: the node matches the spec", err=True)

    kill_before = _kill_before_step(host)

    def progress(index: int, total: int, _step: Step, description: str) -> None:
        if index + 1 == kill_before:
            os.kill(os.getpid(), signal.SIGKILL)
        click.echo(f"[{index + 1}/{total}] {description}", err=True)

    try:
        result = agent.apply(planned, observed, generation=state.metadata.generation, on_step=progress)
    except StoreError as exc:
        _fail(str(exc))
    for text in result.notes[len(planned.notes):]:
        _note(text)
    final = _observe(agent)
    sync = SYNC_SUCCEEDED if result.ok else SYNC_FAILED
    if not result.ok:
        click.echo(f"failed: {result.error_message()}", err=True)
    status = _shown_status(final, sync, result.error_message())
    _print({"apiVersion": state.API_VERSION, "kind": state.KIND,
            "metadata": {"name": state.name, "namespace": state.namespace or DEFAULT_NAMESPACE},
            "spec": state.spec.to_go_dict(), "status": status}, output)
    sys.exit(0 if result.ok else EXIT_FAILED)


def _shown_status(observed: Observation, sync_status: str, error: str) -> dict[str, Any]:
    """The status as `kubectl get -o yaml` would show it: empty fields left out."""
    return {k: v for k, v in status_patch(observed.interfaces, sync_status, error).items() if v}


def _print(obj: dict[str, Any], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(obj, indent=2))
    else:
        click.echo(yamlio.dump_yaml_documents([obj]), nl=False)


@click.command("node-daemon")
@host_options
@click.option("--node-name", default=lambda: os.environ.get("NODE_NAME", ""), show_default="$NODE_NAME",
              help="The node this daemon configures (its NodeState has that name).")
@click.option("--namespace", default=lambda: os.environ.get("NAMESPACE") or DEFAULT_NAMESPACE,
              show_default=f"$NAMESPACE or {DEFAULT_NAMESPACE}")
@click.option("--kubeconfig", metavar="FILE", help="Default: $KUBECONFIG, ~/.kube/config, else in-cluster.")
def node_daemon(node_name: str, namespace: str, kubeconfig: str | None, **host: Any) -> None:
    """Run the node config daemon: watch this node's SriovNetworkNodeState, apply its spec, report status."""
    if not node_name:
        _fail("--node-name (or $NODE_NAME) is required: the daemon configures one node")
    configure_logging()
    agent = HostChoice(**host).agent()
    asyncio.run(_run_daemon(agent, node_name, namespace, kubeconfig))


async def _run_daemon(agent: NodeAgent, node_name: str, namespace: str, kubeconfig: str | None) -> None:
    from vdpa_operator.daemon import kube, service
    from vdpa_operator.daemon.reconcile import NodeReconciler

    api = await kube.connect(node_name, namespace, kubeconfig)
    await service.run(api, NodeReconciler(api, agent))
