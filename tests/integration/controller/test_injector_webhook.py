"""The resource injector end to end: the real operator serving its webhooks to the embedded API server, which
calls them as kube-apiserver does; the seed's NAD and pod created over HTTP with lightkube, exactly as the seed
writes them; the injector's configuration following `enableInjector`."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource
from lightkube.types import PatchType
from operator_harness import NS, client_for, eventually, example, operator_running, seed_cluster

from scenario import SEED_POD
from vdpa_operator.api.models import SriovOperatorConfig
from vdpa_operator.controller.injector_webhook import CONFIGURATION_NAME, PATH, WEBHOOK_NAME, wanted_configuration
from vdpa_operator.controller.webhook import Endpoint, WebhookOptions
from vdpa_operator.kubeclient import NadResource, NamespaceResource, OperatorConfigResource, PodResource, get_or_none
from vdpa_operator.sim.apiserver import ServerHandle

MUTATING = create_global_resource("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
                                  "mutatingwebhookconfigurations")
MLX = "openshift.io/mlxnics"


def webhook(tmp_path: Path) -> WebhookOptions:
    return WebhookOptions(cert_dir=tmp_path / "certs", host="127.0.0.1", port=0, local_url_host="127.0.0.1")


def seed_pod(name: str = "vdpa-pod1", default_network: str | None = None) -> Any:
    pod = yaml.safe_load(SEED_POD)
    pod["metadata"]["name"] = name
    if default_network is not None:
        pod["metadata"]["annotations"]["v1.multus-cni.io/default-network"] = default_network
    return PodResource.from_dict(pod)


async def set_injector(client: AsyncClient, enabled: bool) -> None:
    await client.patch(OperatorConfigResource, "default", {"spec": {"enableInjector": enabled}}, namespace=NS,
                       patch_type=PatchType.MERGE)


async def injector_configuration(client: AsyncClient) -> Any:
    return await get_or_none(client, MUTATING, CONFIGURATION_NAME)


def requested(pod: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = pod["spec"]["containers"][0].get("resources") or {}
    return dict(resources.get("requests") or {}), dict(resources.get("limits") or {})


async def prepare(client: AsyncClient) -> None:
    await seed_cluster(client)
    await client.create(NamespaceResource.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": "vdpa"}}))
    await client.create(NadResource.from_dict(example("ovn-kubernetes-nad.yaml")))


def test_seed_pod_gets_its_vf_request_while_the_injector_is_enabled(server: ServerHandle, tmp_path: Path) -> None:
    async def main() -> None:
        client = client_for(server)
        await prepare(client)
        async with operator_running(server, webhook=webhook(tmp_path)):
            assert await injector_configuration(client) is None  # enableInjector is false by default
            await set_injector(client, True)
            configuration = await eventually(lambda: injector_configuration(client),
                                             what="the injector's MutatingWebhookConfiguration")
            [hook] = configuration["webhooks"]
            assert hook["name"] == WEBHOOK_NAME and hook["failurePolicy"] == "Ignore"
            assert hook["clientConfig"]["url"].endswith(PATH)
            assert base64.b64decode(hook["clientConfig"]["caBundle"]).startswith(b"-----BEGIN CERTIFICATE-----")
            [rule] = hook["rules"]
            assert (rule["operations"], rule["apiGroups"], rule["resources"]) == (["CREATE"], ["apps", ""], ["pods"])

            stored = await client.create(seed_pod())
            assert requested(stored) == ({MLX: "1"}, {MLX: "1"})
            again = await client.get(PodResource, "vdpa-pod1", namespace="vdpa")
            assert requested(again) == ({MLX: "1"}, {MLX: "1"})
            assert [m["mountPath"] for m in again["spec"]["containers"][0]["volumeMounts"]] == ["/etc/podnetinfo"]

            with pytest.raises(ApiError) as refused:
                await client.create(seed_pod("vdpa-pod2", "kube-system/absent"))
            assert refused.value.status.code == 400
            assert refused.value.status.message == (
                f'admission webhook "{WEBHOOK_NAME}" denied the request: could not find network attachment '
                "definition 'kube-system/absent': could not get Network Attachment Definition kube-system/absent: "
                'network-attachment-definitions.k8s.cni.cncf.io "absent" not found')
            assert await get_or_none(client, PodResource, "vdpa-pod2", namespace="vdpa") is None

            with pytest.raises(ApiError) as malformed:
                await client.create(seed_pod("vdpa-pod3", "kube-system/a/b"))
            assert "more than one '/' rune in: 'kube-system/a/b'" in (malformed.value.status.message or "")

            await set_injector(client, False)

            async def gone() -> bool:
                return await injector_configuration(client) is None

            await eventually(gone, what="the injector's configuration deleted")
            plain = await client.create(seed_pod("vdpa-pod4"))
            assert requested(plain) == ({}, {})
        await client.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_operator_start_removes_a_configuration_left_while_the_injector_is_off(server: ServerHandle,
                                                                            tmp_path: Path) -> None:
    """A configuration left by an earlier run (or written by hand) while `enableInjector` is false: at start the
    operator deletes it, so pods are no longer sent to a webhook the configuration does not ask for."""

    async def main() -> None:
        client = client_for(server)
        await prepare(client)
        stale = wanted_configuration(SriovOperatorConfig.model_validate(
            {"metadata": {"name": "default", "namespace": NS}, "spec": {"enableInjector": True}}),
            Endpoint(b"-----BEGIN CERTIFICATE-----\n", url_base="https://127.0.0.1:1"))
        assert stale is not None
        await client.create(MUTATING.from_dict(stale))
        async with operator_running(server, webhook=webhook(tmp_path)):

            async def gone() -> bool:
                return await injector_configuration(client) is None

            await eventually(gone, what="the stale configuration deleted at start")
        await client.close()

    asyncio.run(asyncio.wait_for(main(), 60))
