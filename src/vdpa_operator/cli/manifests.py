"""`vdpactl validate` and `vdpactl render`: the operator's pure core (admission, rendering) on manifest files.
Thin: it reads files, calls the pure core, prints, and picks the exit code.

`validate` answers as the webhook would; `render` answers as the policy sync would, which renders what is stored
without admission (so admission's findings are warnings there, fatal with --strict).
Exit codes: 0 all allowed / done, 1 something was rejected (validate) or the sync fails (render), 2 the input
could not be read (or, for render --strict, admission would refuse some of it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from vdpa_operator import inputs, yamlio
from vdpa_operator.api import admission, review
from vdpa_operator.api.kube import Node
from vdpa_operator.api.meta import Resource
from vdpa_operator.api.models import (
    DEFAULT_NAME,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.cli.common import EXIT_BAD_INPUT
from vdpa_operator.cli.common import note as _note
from vdpa_operator.controller.settings import OperatorSettings, SettingsError
from vdpa_operator.render import policy_sync

EXIT_REJECTED = 1


def _fail_input(err: inputs.InputError) -> NoReturn:
    for line in err.lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _settings(namespace: str | None, supported_nics: str | None, dev_mode: bool) -> OperatorSettings:
    """The operator's settings as its environment gives them (read as the operator reads it), with the flags
    on top."""
    env = dict(os.environ)
    if namespace:
        env["NAMESPACE"] = namespace
    if dev_mode:
        env["DEV_MODE"] = "TRUE"
    try:
        settings = OperatorSettings.from_env(env)
    except SettingsError as err:
        raise inputs.InputError([str(err)]) from err
    return dataclasses.replace(settings, nics=inputs.supported_nics(supported_nics))


def _assumed_nodes(states: Sequence[SriovNetworkNodeState], policies: Sequence[SriovNetworkNodePolicy]) -> list[Node]:
    """Without --nodes: one worker node per node state, labelled so that every policy's nodeSelector matches."""
    labels = dict(policy_sync.DEFAULT_CONFIG_DAEMON_NODE_SELECTOR)
    for policy in policies:
        labels.update(policy.spec.node_selector)
    return [Node.model_validate({"metadata": {"name": s.name, "labels": labels}}) for s in states]


def _cluster_objects(path: str, kind: type[inputs.R], option: str) -> list[inputs.R]:
    """Objects read back from a cluster: fields this version does not know are dropped, with a note."""
    located = inputs.load([path], lenient=True)
    for o in located:
        if o.decoded.ignored:
            _note(f"{o.source}:{o.line}: {o.decoded.kind} \"{o.decoded.name}\": ignoring fields this version "
                  f"does not know: {', '.join(o.decoded.ignored)}")
    return inputs.only(located, kind, option)


class _Inputs:
    """Everything the validate and render commands read, checked before anything is evaluated."""

    def __init__(self, files: Sequence[str], node_states: str | None, nodes: str | None) -> None:
        self.objects = inputs.load(files)
        self.states = (
            _cluster_objects(node_states, SriovNetworkNodeState, "--node-states") if node_states else []
        )
        self.nodes = _cluster_objects(nodes, Node, "--nodes") if nodes else None

    def policies(self) -> list[SriovNetworkNodePolicy]:
        return [o.decoded.obj for o in self.objects if isinstance(o.decoded.obj, SriovNetworkNodePolicy)]

    @functools.cached_property
    def cluster(self) -> admission.ClusterView | None:
        """What dynamic rules see; None (static rules only) when neither node states nor nodes were given."""
        if not self.states and self.nodes is None:
            return None
        nodes = self.nodes
        if nodes is None:
            nodes = _assumed_nodes(self.states, self.policies())
            _note("no --nodes given: assuming one worker node per node state, matching every nodeSelector")
        return admission.ClusterView(nodes=tuple(nodes), node_states=tuple(self.states))


def _admit(files: Sequence[str], node_states: str | None, nodes: str | None, namespace: str | None,
           supported_nics: str | None, dev_mode: bool) -> tuple[_Inputs, OperatorSettings, list[review.Review]]:
    """Read every input (exit 2 on any unreadable one, before anything is evaluated), then admit in order."""
    try:
        data = _Inputs(files, node_states, nodes)
        settings = _settings(namespace, supported_nics, dev_mode)
    except inputs.InputError as err:
        _fail_input(err)
    return data, settings, review.review_all([o.decoded for o in data.objects], data.cluster, settings.admission)


_common = [
    click.option("-f", "--filename", "files", multiple=True, required=True, metavar="FILE",
                 help="Manifest file (multi-document YAML; '-' for stdin). Repeatable; admitted in order."),
    click.option("--node-states", metavar="FILE", help="SriovNetworkNodeState objects with status (the NICs)."),
    click.option("--nodes", metavar="FILE", help="Node objects with their labels (e.g. `kubectl get nodes -o yaml`)."),
    click.option("--namespace", metavar="NS", help="Operator namespace (default: $NAMESPACE or "
                 f"{admission.DEFAULT_NAMESPACE})."),
    click.option("--supported-nics", metavar="FILE",
                 help="supported-nic-ids ConfigMap or '<vendor> <pf> <vf>' lines, replacing the built-in table."),
    click.option("--dev-mode", is_flag=True, help="Admit unsupported NIC models, as upstream DEV_MODE=TRUE."),
]


def _with_common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@click.command()
@_with_common
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def validate(files: tuple[str, ...], node_states: str | None, nodes: str | None, namespace: str | None,
             supported_nics: str | None, dev_mode: bool, output: str) -> None:
    """Run admission (mutation + validation) on manifests, as the operator's webhook would.

    Dynamic rules (node and NIC selection, conflicts between policies) run when --node-states or --nodes
    are given. Exit 0 when all objects are allowed, 1 when any is rejected, 2 when input cannot be read.
    """
    _, _, reviews = _admit(files, node_states, nodes, namespace, supported_nics, dev_mode)
    if output == "json":
        click.echo(json.dumps([r.to_json() for r in reviews], indent=2))
    else:
        _print_review_table(reviews)
    sys.exit(0 if all(r.allowed for r in reviews) else EXIT_REJECTED)


def _print_review_table(reviews: Sequence[review.Review]) -> None:
    rows = [("KIND", "NAMESPACE", "NAME", "RESULT")]
    rows += [(r.kind, r.namespace or "-", r.name or "-", "allowed" if r.allowed else "REJECTED") for r in reviews]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            continue
        r = reviews[index - 1]
        for error in r.verdict.errors:
            click.echo(f"    error:   {error}")
        for warning in r.verdict.warnings:
            click.echo(f"    warning: {warning}")
        for op in r.verdict.patch:
            click.echo(f"    mutated: {op['op']} {op['path']} = {json.dumps(op.get('value'))}")


@click.command()
@_with_common
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--device-plugin-config", "device_plugin_node", metavar="NODE",
              help="Print only NODE's device-plugin config (its ConfigMap entry, the device plugin's --config-file).")
@click.option("--strict", is_flag=True,
              help="Exit 2 and print nothing when admission would refuse any input (default: a warning each).")
def render(files: tuple[str, ...], node_states: str | None, nodes: str | None, namespace: str | None,
           supported_nics: str | None, dev_mode: bool, output: str, device_plugin_node: str | None,
           strict: bool) -> None:
    """Render what the operator's policy sync writes: one SriovNetworkNodeState per node, the device-plugin
    ConfigMap, and each node's device-plugin label.

    The inputs are taken as the API server stores them (CRD defaults and the mutating webhook's patch applied)
    and rendered as the operator renders stored objects: without admission. What admission would refuse is
    rendered too, with a warning on stderr for each finding; --strict makes the findings fatal (exit 2).
    Exit 1 when the sync itself fails (nothing is written then), 2 on unreadable input."""
    if node_states is None:
        click.echo("error: --node-states is required: rendering needs each node's NICs (status.interfaces)",
                   err=True)
        sys.exit(EXIT_BAD_INPUT)
    data, settings, reviews = _admit(files, node_states, nodes, namespace, supported_nics, dev_mode)
    findings = _findings(data, reviews)
    for line in findings:
        click.echo(f"{'error' if strict else 'warning'}: {line}", err=True)
    if strict and findings:
        click.echo(f"error: not rendered: --strict and {len(findings)} admission findings", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for r in reviews:
        for warning in r.verdict.warnings:
            _note(f"{r.kind} {r.namespace}/{r.name}: {warning}")
    stored = [r.stored for r in reviews if r.stored is not None]
    cluster = data.cluster
    assert cluster is not None
    try:
        result = policy_sync.render_for_config(
            _operator_config(stored, settings.namespace),
            [o for o in stored if isinstance(o, SriovNetworkNodePolicy)],
            cluster.nodes,
            data.states,
            namespace=settings.namespace,
            nics=settings.nics,
            pool_configs=[o for o in stored if isinstance(o, SriovNetworkPoolConfig)],
        )
    except policy_sync.RenderError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_REJECTED)
    for note in result.skipped:
        _note(note)
    if device_plugin_node is not None:
        entries = result.config_map.data
        if device_plugin_node not in entries:
            click.echo(f"error: --device-plugin-config {device_plugin_node}: no such node in the rendering "
                       f"(nodes: {', '.join(sorted(entries)) or 'none'})", err=True)
            sys.exit(EXIT_BAD_INPUT)
        click.echo(entries[device_plugin_node])
        return
    objects = _render_objects(result)
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        click.echo(yamlio.dump_yaml_documents(objects), nl=False)


def _findings(data: _Inputs, reviews: Sequence[review.Review]) -> list[str]:
    """What admission (or the CRD schema) would refuse, a line each: where, which object, which field, why."""
    lines = []
    for located, r in zip(data.objects, reviews, strict=True):
        where = f"{located.source}:{located.line}: {r.kind} {r.namespace or '-'}/{r.name or '-'}"
        unstored = "; not rendered: the API server refuses it" if r.stored is None else ""
        for problem in r.verdict.errors:
            message = problem.message if problem.message.startswith(problem.field) else \
                f"{problem.field}: {problem.message}"
            lines.append(f"{where}: {message} ({problem.fix}){unstored}")
    return lines


def _operator_config(stored: Sequence[Resource], namespace: str) -> SriovOperatorConfig | None:
    """`SriovOperatorConfig/default` in the operator namespace, the only one the operator reads."""
    configs = [o for o in stored if isinstance(o, SriovOperatorConfig)]
    for config in configs:
        if config.name != DEFAULT_NAME or (config.namespace or namespace) != namespace:
            _note(f"SriovOperatorConfig {config.namespace or '-'}/{config.name}: ignored; the operator reads "
                  f"{namespace}/{DEFAULT_NAME} only")
    return next((c for c in configs if c.name == DEFAULT_NAME and (c.namespace or namespace) == namespace), None)


def _render_objects(result: policy_sync.ClusterRender) -> list[dict[str, Any]]:
    """NodeStates (spec only: status belongs to the daemon), the ConfigMap, and label-only Node objects."""
    objects: list[dict[str, Any]] = []
    for state in result.node_states:
        objects.append({
            "apiVersion": state.API_VERSION,
            "kind": state.KIND,
            "metadata": {"name": state.name, "namespace": state.namespace},
            "spec": state.spec.to_go_dict(),
        })
    objects.append(result.config_map.to_dict())
    for node_name, value in sorted(result.node_labels.items()):
        objects.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node_name, "labels": {policy_sync.DEVICE_PLUGIN_LABEL: value}},
        })
    return objects
