"""Events on the objects the operator changes, one per state change, as upstream's recorder writes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import AsyncClient

from vdpa_operator.api.meta import Resource
from vdpa_operator.kubeclient import new_event, record_event

COMPONENT = "sriov-network-operator"


def _reference(obj: Resource | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(obj, Resource):
        return {"apiVersion": obj.API_VERSION, "kind": obj.KIND, "name": obj.name, "namespace": obj.namespace,
                "uid": obj.metadata.uid}
    meta = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
            "namespace": meta.get("namespace"), "uid": meta.get("uid")}


class Recorder:
    """Best-effort Events (a failure is logged, never raised), so a full event store cannot stop a sync."""

    def __init__(self, client: AsyncClient, *, component: str = COMPONENT) -> None:
        self._client = client
        self._component = component

    async def normal(self, obj: Resource | Mapping[str, Any], reason: str, message: str) -> None:
        await record_event(self._client, new_event(_reference(obj), reason, message, component=self._component))

    async def warn(self, obj: Resource | Mapping[str, Any], reason: str, message: str) -> None:
        await record_event(self._client,
                           new_event(_reference(obj), reason, message, component=self._component, warning=True))
