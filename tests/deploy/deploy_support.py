"""Reading deploy/: the plain manifests, the Helm chart rendered offline, and validation against schemas."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate

from vdpa_operator import yamlio
from vdpa_operator.api import crd, kinds
from vdpa_operator.api.decoding import decode

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "vdpa-operator"
SAMPLE = DEPLOY / "sriovoperatorconfig.yaml"
NAMESPACE = "openshift-sriov-network-operator"
KUBERNETES_VERSION = "1.37"
"""The schemas manifests are checked against (the newest kubernetes-validate 1.37.x ships)."""
HELM_ONLY_LABELS = frozenset({"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"})
"""Bookkeeping the chart adds to every object's own labels; everything else must equal the plain manifests."""

Obj = dict[str, Any]
Key = tuple[str, str, str, str]


def key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def load(path: Path) -> list[Obj]:
    """The objects of one manifest file, read the way Kubernetes reads YAML."""
    return [doc.value for doc in yamlio.parse_documents(path.read_text(encoding="utf-8"), str(path))]


def plain_files(*, sample: bool = True) -> list[Path]:
    """Every manifest under deploy/ but kustomization.yaml (which is not an object) and the chart."""
    files = sorted([*DEPLOY.glob("*.yaml"), *(DEPLOY / "crds").glob("*.yaml")])
    return [p for p in files if p.name != "kustomization.yaml" and (sample or p != SAMPLE)]


def plain_objects(*, sample: bool = True) -> list[Obj]:
    return [obj for path in plain_files(sample=sample) for obj in load(path)]


def by_key(objects: list[Obj]) -> dict[Key, Obj]:
    keyed = {key(o): o for o in objects}
    assert len(keyed) == len(objects), f"two objects with the same kind and name in {sorted(keyed)}"
    return keyed


def render_chart(values: Obj | None = None, *, release_namespace: str = "default") -> list[Obj]:
    """`helm install --dry-run` offline, through Helm's own Go engine: the CRDs of crds/, then the templates."""
    with helm.Chart.load(CHART) as chart:
        crds = [doc.value for c in chart.crds for doc in yamlio.parse_documents(c["data"], c["name"])]
        rendered = chart.render(values, name="vdpa-operator", namespace=release_namespace, is_install=True)
    templates = [
        doc.value
        for name, text in sorted(rendered.items()) if name.endswith((".yaml", ".yml"))
        for doc in yamlio.parse_documents(text, name)
    ]
    return crds + templates


def without_helm_labels(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    labels = out.get("metadata", {}).get("labels")
    if labels is not None:
        for label in HELM_ONLY_LABELS & labels.keys():
            del labels[label]
    return out


def is_custom_resource(obj: Obj) -> bool:
    """One of this project's kinds (validated against our CRD schema, not Kubernetes')."""
    return kinds.lookup(obj["apiVersion"], obj["kind"]) in kinds.OPERATOR_KINDS


def validate(obj: Obj) -> None:
    """Raise when the object is not valid: built-in kinds against the Kubernetes OpenAPI schema (strict: unknown
    fields are errors), our kinds against the generated CRD schema and the models' own decoding."""
    if is_custom_resource(obj):
        model = kinds.lookup(obj["apiVersion"], obj["kind"])
        assert model is not None
        jsonschema.Draft202012Validator(crd.openapi_schema(model)).validate(obj)
        decoded = decode(obj)
        assert not decoded.schema_issues, decoded.schema_issues
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def containers(obj: Obj) -> list[Obj]:
    """The containers of a workload's pod template (none for other kinds)."""
    if obj["kind"] not in {"Deployment", "DaemonSet"}:
        return []
    spec = obj["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_of(workload: Obj, name: str | None = None) -> Obj:
    """The named container (or init container) of a workload; its only container when no name is given."""
    if name is None:
        [only] = workload["spec"]["template"]["spec"]["containers"]
        return only
    [named] = [c for c in containers(workload) if c["name"] == name]
    return named


def host_mounts(workload: Obj, container: str | None = None) -> dict[str, tuple[str, bool]]:
    """mountPath → (host path, read-only) for the hostPath volumes of one container of a workload (its only one
    when none is named)."""
    spec = workload["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    return {m["mountPath"]: (host[m["name"]], m.get("readOnly", False))
            for m in container_of(workload, container)["volumeMounts"] if m["name"] in host}


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


