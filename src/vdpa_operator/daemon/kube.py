"""`NodeStateApi` over a real Kubernetes API with lightkube's `AsyncClient`.

The sriovnetwork kinds are lightkube generic resources (plain JSON), turned into the project's pydantic models at
this boundary; resources and error translation come from `kubeclient`. Every lightkube/httpx failure leaves this module
as a `ClusterError` that names the operation and the object, so the reconciler can log it and back off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from vdpa_operator.api.decoding import decode_from_cluster
from vdpa_operator.api.models import (
    API_VERSION,
    DEFAULT_NAME,
    DESIRED_STATE,
    NODE_STATE,
    SriovNetworkNodeState,
    SriovOperatorConfig,
)
from vdpa_operator.kubeclient import (
    ClusterError,
    Informer,
    NodeResource,
    NodeStateResource,
    OperatorConfigResource,
    api_errors,
    connect_client,
    get_or_none,
    new_event,
    record_event,
)

__all__ = ["LightkubeNodeStateApi", "NodeStateResource", "OperatorConfigResource", "connect", "node_state_from_json"]

log = logging.getLogger(__name__)

COMPONENT = "sriov-network-config-daemon"
"""Event source and field manager, as upstream's daemon names itself."""

WATCH_SERVER_TIMEOUT = 300
"""Seconds before the server ends a watch and lightkube re-opens it: bounds how long a silently dead
connection can hide changes (client-go picks 5–10 minutes for the same reason)."""

def node_state_from_json(raw: Mapping[str, Any]) -> SriovNetworkNodeState:
    """The model of a NodeState read from a cluster (`api.decoding.decode_from_cluster`); ValueError if invalid."""
    return decode_from_cluster(raw, SriovNetworkNodeState)


class LightkubeNodeStateApi:
    """One node's NodeState, Node annotation, operator config and events, through a lightkube `AsyncClient`."""

    def __init__(
        self,
        client: AsyncClient,
        node_name: str,
        namespace: str,
        *,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
    ) -> None:
        self._client = client
        self.node_name = node_name
        self.namespace = namespace
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._uid: str | None = None
        """uid of the NodeState last read, so events point at this object and not a later namesake."""

    @property
    def _what(self) -> str:
        return f"SriovNetworkNodeState {self.namespace}/{self.node_name}"

    def _model(self, raw: Mapping[str, Any]) -> SriovNetworkNodeState:
        try:
            state = node_state_from_json(raw)
        except ValueError as err:
            raise ClusterError(f"{self._what} from the API server does not match the model: {err}") from err
        self._uid = state.metadata.uid or self._uid
        return state

    async def get(self) -> SriovNetworkNodeState | None:
        raw = await get_or_none(self._client, NodeStateResource, self.node_name, namespace=self.namespace)
        return None if raw is None else self._model(raw)

    async def patch_status(self, status: dict[str, Any]) -> SriovNetworkNodeState:
        with api_errors("patch status of", self._what):
            raw = await self._client.patch(
                NodeStateResource.Status,
                self.node_name,
                {"status": status},
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )
        return self._model(raw)

    async def request_drain_state(self, value: str) -> None:
        """Node first, then NodeState, in upstream's order: the drain controller acts on the NodeState's."""
        with api_errors(f"annotate {NODE_STATE}={value} on", f"Node {self.node_name}"):
            await self._client.patch(
                NodeResource,
                self.node_name,
                {"metadata": {"annotations": {NODE_STATE: value}}},
                patch_type=PatchType.MERGE,
            )
        with api_errors(f"annotate {DESIRED_STATE}={value} on", self._what):
            await self._client.patch(
                NodeStateResource,
                self.node_name,
                {"metadata": {"annotations": {DESIRED_STATE: value}}},
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )

    async def disable_drain(self) -> bool:
        what = f"{SriovOperatorConfig.KIND} {self.namespace}/{DEFAULT_NAME}"
        raw = await get_or_none(self._client, OperatorConfigResource, DEFAULT_NAME, namespace=self.namespace)
        if raw is None:
            return False
        value = (raw.get("spec") or {}).get("disableDrain", False)
        if not isinstance(value, bool):
            raise ClusterError(f"{what}: spec.disableDrain is {value!r}, not a boolean")
        return value

    async def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        involved = {"apiVersion": API_VERSION, "kind": SriovNetworkNodeState.KIND, "name": self.node_name,
                    "namespace": self.namespace, "uid": self._uid}
        await record_event(self._client, new_event(involved, reason, message, component=COMPONENT,
                                                   host=self.node_name, warning=warning))

    async def changes(self) -> AsyncIterator[None]:
        """Yields once when the first list is done, then per change of the NodeState, and once after every
        re-list (a broken watch or a 410), since anything may have changed in between; bursts collapse."""
        events: asyncio.Queue[str] = asyncio.Queue()
        informer = Informer(
            self._client, NodeStateResource, namespace=self.namespace, fields={"metadata.name": self.node_name},
            on_event=lambda kind, _new, _old: events.put_nowait(kind), retry_delay=self._retry_delay,
            max_retry_delay=self._max_retry_delay, server_timeout=WATCH_SERVER_TIMEOUT)
        task = asyncio.create_task(informer.run(), name=f"watch {self._what}")
        try:
            while True:
                await events.get()
                while not events.empty():
                    events.get_nowait()
                yield None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()


async def connect(node_name: str, namespace: str, kubeconfig: str | None = None) -> LightkubeNodeStateApi:
    """A `LightkubeNodeStateApi` from the kubeconfig file if given, else $KUBECONFIG or the in-cluster service
    account or ~/.kube/config. Raises `ClusterError` when no configuration can be loaded."""
    return LightkubeNodeStateApi(connect_client(kubeconfig, namespace, COMPONENT), node_name, namespace)
