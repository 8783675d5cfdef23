"""What the node daemon needs from a Kubernetes API: its own NodeState, two annotations, one operator setting,
and events. The reconciler sees only this port; `daemon.kube` implements it with lightkube over HTTP (the only
implementation: tests run it against the embedded API server, `vdpa_operator.sim.apiserver`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from vdpa_operator.api.models import SriovNetworkNodeState
from vdpa_operator.kubeclient import ClusterError

__all__ = ["ClusterError", "NodeStateApi"]


class NodeStateApi(Protocol):
    """One node's view of the cluster. Every method raises `ClusterError` when the API cannot be reached."""

    node_name: str

    async def get(self) -> SriovNetworkNodeState | None:
        """The node's own SriovNetworkNodeState, None when it does not exist (yet)."""
        ...

    async def patch_status(self, status: dict[str, Any]) -> SriovNetworkNodeState:
        """JSON merge patch of the `status` subresource; `status` is the new status as JSON."""
        ...

    async def request_drain_state(self, value: str) -> None:
        """Set `desired-state` on the NodeState and `state` on the Node to `value` (upstream `annotate`)."""
        ...

    async def disable_drain(self) -> bool:
        """`spec.disableDrain` of the `default` SriovOperatorConfig; False when there is none."""
        ...

    async def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """A core/v1 Event on the NodeState. Best effort: failures are logged, never raised."""
        ...

    def changes(self) -> AsyncIterator[None]:
        """Yields once at start and then whenever the NodeState changes (watch, reconnecting as needed)."""
        ...


