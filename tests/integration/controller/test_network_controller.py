"""The network controller against the embedded API server, after upstream's `sriovnetwork_controller_test.go`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType
from operator_harness import NS, client_for, eventually, operator_running

from vdpa_operator.kubeclient import NadResource, NamespaceResource, SriovNetworkResource
from vdpa_operator.render.networks import LAST_NETWORK_NAMESPACE, NETATTDEF_FINALIZER
from vdpa_operator.sim.apiserver import ServerHandle

Scenario = Callable[[AsyncClient], Awaitable[None]]


def run(server: ServerHandle, scenario: Scenario) -> None:
    async def main() -> None:
        client = client_for(server)
        try:
            async with operator_running(server, leader_election=False):
                await scenario(client)
        finally:
            await client.close()

    asyncio.run(main())


def network(name: str, namespace: str = NS, **spec: Any) -> Any:
    return SriovNetworkResource.from_dict({
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetwork",
        "metadata": {"name": name, "namespace": namespace}, "spec": {"resourceName": "mlxnics", **spec}})


async def nad(client: AsyncClient, name: str, namespace: str) -> Any:
    try:
        return await client.get(NadResource, name, namespace=namespace)
    except ApiError:
        return None


async def ready(client: AsyncClient, name: str, namespace: str = NS) -> dict[str, Any] | None:
    obj = await client.get(SriovNetworkResource, name, namespace=namespace)
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)


async def ready_becomes(client: AsyncClient, name: str, namespace: str = NS, *, status: str,
                        reason: str = "", message: str = "") -> None:
    """Wait until the network's Ready condition has `status`, `reason` (if given) and contains `message`."""
    async def check() -> bool:
        condition = await ready(client, name, namespace) or {}
        return condition.get("status") == status and reason in (condition.get("reason"), "") \
            and message in condition.get("message", "")

    await eventually(check, what=f"Ready={status} {reason} {message!r} on {namespace}/{name}")


async def namespace(client: AsyncClient, name: str) -> None:
    await client.create(NamespaceResource.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": name}}))


def test_nad_waits_for_its_namespace_and_appears_when_it_is_created(server: ServerHandle) -> None:
    async def scenario(client: AsyncClient) -> None:
        await client.create(network("late", networkNamespace="ns-later"))

        await ready_becomes(client, "late", status="False", reason="NamespaceNotFound")
        await namespace(client, "ns-later")
        await eventually(lambda: nad(client, "late", "ns-later"), what="NAD once the namespace exists")
        await ready_becomes(client, "late", status="True", reason="NetworkReady")

    run(server, scenario)


def test_user_annotations_are_kept_and_the_target_namespace_is_recorded(server: ServerHandle) -> None:
    async def scenario(client: AsyncClient) -> None:
        obj = network("annotated", networkNamespace="default")
        obj["metadata"]["annotations"] = {"foo": "bar"}
        await client.create(obj)

        async def annotated() -> bool:
            stored = await client.get(SriovNetworkResource, "annotated", namespace=NS)
            annotations = stored["metadata"].get("annotations") or {}
            return annotations.get("foo") == "bar" and annotations.get(LAST_NETWORK_NAMESPACE) == "default" \
                and NETATTDEF_FINALIZER in (stored["metadata"].get("finalizers") or [])

        await eventually(annotated, what="user annotation kept, last-network-namespace and finalizer set")

    run(server, scenario)


def test_moving_the_network_namespace_moves_the_nad_and_delete_removes_it(server: ServerHandle) -> None:
    async def scenario(client: AsyncClient) -> None:
        await namespace(client, "ns-a")
        await namespace(client, "ns-b")
        await client.create(network("mover", networkNamespace="ns-a"))
        await eventually(lambda: nad(client, "mover", "ns-a"), what="NAD in ns-a")
        await client.patch(SriovNetworkResource, "mover", {"spec": {"networkNamespace": "ns-b"}}, namespace=NS,
                           patch_type=PatchType.MERGE)
        await eventually(lambda: nad(client, "mover", "ns-b"), what="NAD in ns-b")

        async def old_gone() -> bool:
            return await nad(client, "mover", "ns-a") is None

        await eventually(old_gone, what="NAD removed from ns-a")
        # Deleting the network: the finalizer removes the NAD first, then the network goes.
        await client.delete(SriovNetworkResource, "mover", namespace=NS)

        async def all_gone() -> bool:
            try:
                await client.get(SriovNetworkResource, "mover", namespace=NS)
                return False
            except ApiError:
                return await nad(client, "mover", "ns-b") is None

        await eventually(all_gone, what="network and NAD deleted")

    run(server, scenario)


def test_network_outside_the_operator_namespace(server: ServerHandle) -> None:
    async def scenario(client: AsyncClient) -> None:
        await namespace(client, "app")
        await client.create(network("local", namespace="app"))
        created = await eventually(lambda: nad(client, "local", "app"), what="NAD in the network's own namespace")
        owner = created["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("SriovNetwork", "local")

        # networkNamespace may only be used from the operator namespace (the webhook is not registered here, so
        # the object is stored and the controller reports it).
        await client.create(network("elsewhere", namespace="app", networkNamespace="default"))
        await ready_becomes(client, "elsewhere", "app", status="False", reason="NetworkAttachmentDefinitionInvalid")
        assert await nad(client, "elsewhere", "default") is None

    run(server, scenario)


def test_a_nad_owned_by_another_network_is_left_alone(server: ServerHandle) -> None:
    async def scenario(client: AsyncClient) -> None:
        await namespace(client, "app")
        await client.create(network("shared", networkNamespace="app"))
        first = await eventually(lambda: nad(client, "shared", "app"), what="NAD of the operator's network")
        await client.create(network("shared", namespace="app"))
        await ready_becomes(client, "shared", "app", status="False", message="already exists and is owned by")
        after = await nad(client, "shared", "app")
        assert after["metadata"]["annotations"] == first["metadata"]["annotations"]

    run(server, scenario)
