"""Which model reads which `apiVersion`/`kind`: the one registry the decoder, the CLI and the CRD generator share."""

from __future__ import annotations

from vdpa_operator.api import kube, models
from vdpa_operator.api.meta import Resource

OPERATOR_KINDS: tuple[type[Resource], ...] = (
    models.SriovNetworkNodePolicy,
    models.SriovNetworkNodeState,
    models.SriovNetwork,
    models.SriovIBNetwork,
    models.OVSNetwork,
    models.SriovOperatorConfig,
    models.SriovNetworkPoolConfig,
)
"""Kinds this project defines CRDs for."""

ALL_KINDS: tuple[type[Resource], ...] = (
    *OPERATOR_KINDS,
    kube.NetworkAttachmentDefinition,
    kube.Node,
    kube.ConfigMap,
)

_BY_KEY: dict[tuple[str, str], type[Resource]] = {(k.API_VERSION, k.KIND): k for k in ALL_KINDS}


def lookup(api_version: str, kind: str) -> type[Resource] | None:
    """The model for an apiVersion/kind pair, or None when this project does not know it."""
    return _BY_KEY.get((api_version, kind))


def known_kinds() -> list[str]:
    return [f"{k.API_VERSION}/{k.KIND}" for k in ALL_KINDS]
