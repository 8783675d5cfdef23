"""kopf, unchanged, against the embedded API server (the issue names it among the clients that must work)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType

from vdpa_operator.kubeclient import PolicyResource
from vdpa_operator.sim.apiserver import ServerHandle

kopf_testing = pytest.importorskip("kopf.testing", reason="kopf is a dev dependency (pyproject [dev])")
OPERATOR = Path(__file__).parent / "kopf_operator" / "operator.py"
NS = "openshift-sriov-network-operator"


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def annotations(client: Client) -> dict[str, str]:
    return dict(client.get(PolicyResource, "p")["metadata"].get("annotations") or {})


@pytest.fixture
def root_logging() -> Iterator[None]:
    """kopf's `run --verbose` sets the process's root logger to DEBUG; later tests' caplog would see INFO records
    they never asked for. Put it back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.usefixtures("root_logging")
def test_kopf_handlers_see_defaults_and_patch_annotations(server: ServerHandle,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig_path))
    client = Client(KubeConfig.from_file(server.kubeconfig_path), namespace=NS)
    policy = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
              "metadata": {"name": "p", "namespace": NS},
              "spec": {"resourceName": "mlxnics", "numVfs": 2, "nodeSelector": {},
                       "nicSelector": {"vendor": "15b3"}}}
    args = ["run", "--standalone", "--namespace", NS, "--verbose", str(OPERATOR)]
    with kopf_testing.KopfRunner(args, timeout=30) as runner:
        client.create(PolicyResource.from_dict(policy))
        seen = wait_for(lambda: annotations(client).get("test.kopf.dev/seen"))
        # The handler saw the object as stored: deviceType defaulted by the CRD schema.
        assert seen == "mlxnics/netdevice"
        client.patch(PolicyResource, "p", {"spec": {"numVfs": 4}}, patch_type=PatchType.MERGE)
        annotation = wait_for(lambda: annotations(client).get("test.kopf.dev/numvfs"))
        assert annotation == "2->4"
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert "Handler 'created' succeeded" in runner.output
