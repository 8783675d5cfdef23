"""What the API server serves: one `ResourceType` per kind, the built-in core kinds, and CRDs turned into types.

A type carries the per-kind behaviour the storage needs (scope, status subresource, generation tracking,
whether an update may omit resourceVersion), so the store itself has no per-kind branches.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator.api.crd import all_crds


@dataclass(frozen=True)
class ResourceType:
    """One served kind at one group/version, as discovery lists it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    """Writes to the main resource keep the stored status; only `/status` changes it."""
    status_dropped_on_create: bool = False
    """A create starts with no status (custom resources); Nodes keep the status the kubelet registers."""
    tracks_generation: bool = False
    """`metadata.generation` starts at 1 and counts changes outside metadata (and status, with the subresource)."""
    unconditional_update: bool = True
    """A PUT may omit metadata.resourceVersion (false for custom resources, as in kube-apiserver)."""
    custom: bool = False
    """Defined by a CRD: list items carry apiVersion/kind, strategic merge patch is refused."""
    crd: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """The CRD this type came from, for later schema validation and defaulting."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`plural.group`, the way error messages name a resource (`nodes`, `sriovnetworknodestates.sriov…`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "get", "list", "patch", "update", "watch"]


def _core(
    kind: str, plural: str, namespaced: bool, short_names: tuple[str, ...] = (), status: bool = False
) -> ResourceType:
    return ResourceType(
        "", "v1", kind, plural, namespaced, singular=kind.lower(), short_names=short_names, status_subresource=status
    )


CORE_TYPES: tuple[ResourceType, ...] = (
    _core("Namespace", "namespaces", False, ("ns",)),
    _core("Node", "nodes", False, ("no",), status=True),
    _core("ConfigMap", "configmaps", True, ("cm",)),
    _core("Event", "events", True, ("ev",)),
)
"""The core/v1 kinds the operator and daemon use. A Node's status, as in kube-apiserver, is kept on create and
changed afterwards only through `/status`."""

BUILTIN_NAMESPACES: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Namespaces every cluster starts with."""


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One type per served version of an `apiextensions.k8s.io/v1` CustomResourceDefinition."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", ())),
                status_subresource="status" in version.get("subresources", {}),
                status_dropped_on_create="status" in version.get("subresources", {}),
                tracks_generation=True,
                unconditional_update=False,
                custom=True,
                crd=crd,
            )
        )
    return out


@functools.cache
def project_crds() -> tuple[dict[str, Any], ...]:
    """The project's CRDs, generated from the models: the one source `make crds` writes `deploy/crds/` from
    (and `make test` checks them against). Built once per process; callers must not modify them."""
    return tuple(all_crds().values())


class Registry:
    """The served types, found by the URL parts a request carries."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in types:
            key = (rtype.group, rtype.version, rtype.plural)
            if key in self._by_path:
                raise ValueError(f"{rtype.group_resource}/{rtype.version} is defined twice")
            self._by_path[key] = rtype

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return next((t for t in self if t.api_version == api_version and t.kind == kind), None)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._by_path.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group → its served versions (the core group is ""), in registration order."""
        out: dict[str, list[str]] = {}
        for rtype in self:
            versions = out.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self if t.group == group and t.version == version]
