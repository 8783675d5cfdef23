"""Admitting a sequence of manifests in order, as `kubectl apply -f` of the same files would.

Each later object sees the earlier admitted ones as existing (same kind, namespace and name = an update), so
two policies in one file are checked against each other exactly as they would be in a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from vdpa_operator.api import admission, crd
from vdpa_operator.api.decoding import Decoded
from vdpa_operator.api.meta import Resource
from vdpa_operator.api.models import SriovNetworkNodePolicy, SriovOperatorConfig


@dataclass(frozen=True)
class Review:
    """The outcome for one object: the admission verdict, and the object as the API server would store it
    (CRD defaults and the mutating webhook's patch applied) whether admission allows it or not, since a stored
    object is rendered without admission; None when the API server itself refuses it (the CRD schema)."""

    kind: str
    name: str
    namespace: str
    verdict: admission.Verdict
    stored: Resource | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict.allowed

    def to_json(self) -> dict[str, Any]:
        """The `vdpactl validate -o json` record (a fixed contract: keep the keys and their meaning)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "allowed": self.verdict.allowed,
            "errors": [str(e) for e in self.verdict.errors],
            "warnings": list(self.verdict.warnings),
            "patch": [dict(op) for op in self.verdict.patch],
        }


def _key(obj: Resource) -> tuple[str, str, str]:
    return (obj.KIND, obj.namespace, obj.name)


def review_all(
    documents: Sequence[Decoded],
    cluster: admission.ClusterView | None,
    settings: admission.Settings,
) -> list[Review]:
    """Admit every document in order; `cluster` (None: no node data, static rules only) grows as they pass."""
    existing: set[tuple[str, str, str]] = set()
    if cluster is not None:
        existing.update(_key(p) for p in cluster.policies)
        if cluster.operator_config is not None:
            existing.add(_key(cluster.operator_config))
    reviews = []
    for doc in documents:
        if doc.obj is None:
            problems = tuple(
                admission.Problem(issue.field, str(issue), "change it to a value the CRD schema allows")
                for issue in doc.schema_issues
            )
            reviews.append(Review(doc.kind, doc.name, doc.namespace, admission.Verdict(False, problems)))
            continue
        raw = crd.crd_defaults(doc.model, doc.raw)
        obj = doc.model.model_validate(raw, by_name=False)
        operation = admission.Operation.UPDATE if _key(obj) in existing else admission.Operation.CREATE
        verdict, mutated = admission.admit(raw, obj, operation, cluster, settings)
        if not verdict.allowed:
            reviews.append(Review(doc.kind, doc.name, doc.namespace, verdict, mutated))
            continue
        existing.add(_key(mutated))
        if cluster is not None:
            cluster = _with_stored(cluster, mutated)
        reviews.append(Review(doc.kind, doc.name, doc.namespace, verdict, mutated))
    return reviews


def _with_stored(cluster: admission.ClusterView, stored: Resource) -> admission.ClusterView:
    """The cluster after `stored` was created or updated."""
    if isinstance(stored, SriovNetworkNodePolicy):
        others = tuple(p for p in cluster.policies if _key(p) != _key(stored))
        return replace(cluster, policies=(*others, stored))
    if isinstance(stored, SriovOperatorConfig):
        return replace(cluster, operator_config=stored)
    return cluster
