"""Local runs listen on 127.0.0.1 unless told otherwise; deploy/ tells the operator's pod to listen on every
interface (the probes and the webhook Service reach it on the pod's address), in the plain manifests and the chart
alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from deploy.deploy_support import container_of, plain_objects, render_chart
from vdpa_operator.cli.operator import operator
from vdpa_operator.cli.sim import apiserver
from vdpa_operator.controller.service import OperatorOptions
from vdpa_operator.controller.webhook import WebhookOptions


def _params(command: click.Command, args: list[str]) -> dict[str, Any]:
    return dict(command.make_context(command.name or "", list(args)).params)


def test_local_runs_listen_on_loopback_by_default() -> None:
    params = _params(operator, [])
    assert params["health_address"].rpartition(":")[0] == "127.0.0.1"
    assert params["webhook_address"].rpartition(":")[0] == "127.0.0.1"
    assert _params(apiserver, [])["host"] == "127.0.0.1"
    assert OperatorOptions().health_address is not None and OperatorOptions().health_address[0] == "127.0.0.1"
    assert WebhookOptions(cert_dir=Path("certs")).host == "127.0.0.1"


@pytest.mark.parametrize("source", ["deploy", "chart"])
def test_the_operator_pod_listens_on_every_interface_at_its_container_ports(source: str) -> None:
    objects = plain_objects(sample=False) if source == "deploy" else render_chart()
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "vdpa-operator")
    container = container_of(deployment, "operator")
    command, *args = container["args"]
    assert command == "operator"
    params = _params(operator, args)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for option, port_name in (("health_address", "http"), ("webhook_address", "webhook")):
        host, _, port = params[option].rpartition(":")
        assert (host, int(port)) == ("", ports[port_name]), f"{option} {params[option]} in {source}"
    probes = [container[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe")]
    assert set(probes) == {"http"}
