"""What the API server serves: one `ResourceType` per kind and version, the built-in kinds, and CRDs turned into
types (with their schema compiled once).

A type carries the per-kind behaviour the storage needs (scope, subresources, generation tracking, whether an
update may omit resourceVersion, name rules, built-in defaults), so the store itself has few per-kind branches.
Objects are stored per `group_resource`: every served version of a CRD reads and writes the same objects.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator.api.crd import all_crds
from vdpa_operator.sim.apiserver.schema import Node, SchemaError, compile_schema

Object = dict[str, Any]
CRD_GROUP = "apiextensions.k8s.io"
CRD_RESOURCE = f"customresourcedefinitions.{CRD_GROUP}"

SUBDOMAIN, LABEL, DNS1035, PATH_SEGMENT = "subdomain", "label", "dns1035", "path-segment"
"""Name rules: which names kube-apiserver accepts for a kind (`metadata.name` validation)."""


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
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    """Writes to the main resource keep the stored status; only `/status` changes it."""
    subresources: tuple[str, ...] = ()
    """Other subresources served: `eviction` and `binding` for pods, `token` (TokenRequest) for service accounts."""
    status_dropped_on_create: bool = False
    """A create starts with no status (custom resources); Nodes keep the status the kubelet registers."""
    tracks_generation: bool = False
    """`metadata.generation` starts at 1 and counts changes outside metadata (and status, with the subresource)."""
    unconditional_update: bool = True
    """A PUT may omit metadata.resourceVersion (false for custom resources, as in kube-apiserver)."""
    custom: bool = False
    """Defined by a CRD: list items carry apiVersion/kind, strategic merge patch is refused."""
    name_rule: str = SUBDOMAIN
    field_labels: tuple[str, ...] = ()
    """Field selectors the kind supports besides metadata.name and metadata.namespace."""
    crd: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """The CRD this type came from (its printer columns and schema, for tables and /openapi)."""
    schema: Node | None = field(default=None, compare=False, hash=False, repr=False)
    """The compiled `openAPIV3Schema` of this version: pruning, defaulting and validation."""
    defaults: Callable[[Object], Object] | None = field(default=None, compare=False, hash=False, repr=False)
    """Built-in defaulting on decode (a Secret's type, a Namespace's name label); returns a new object."""
    on_create: Callable[[Object], Object] | None = field(default=None, compare=False, hash=False, repr=False)
    """Built-in create strategy (a Namespace starts Active, a Pod Pending); returns a new object."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`plural.group`, the way error messages name a resource (`nodes`, `sriovnetworknodestates.sriov…`).
        Also the storage key: every version of a resource shares its objects."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Kind.group`, the way 422 messages name a kind (`SriovNetworkNodePolicy.sriovnetwork.openshift.io`)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "get", "list", "patch", "update", "watch"]


# --- built-in kinds ---------------------------------------------------------------------------------------------


def _secret_defaults(obj: Object) -> Object:
    """`stringData` is write-only: merged into `data` (base64) on decode; `type` defaults to Opaque."""
    out = dict(obj)
    string_data = out.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = dict(out.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        out["data"] = data
    out.setdefault("type", "Opaque")
    return out


def _namespace_defaults(obj: Object) -> Object:
    """Every namespace carries `kubernetes.io/metadata.name: <name>` (set on every write, as in kube-apiserver)."""
    meta = dict(obj.get("metadata") or {})
    if meta.get("name"):
        meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}
    return {**obj, "metadata": meta}


def _namespace_on_create(obj: Object) -> Object:
    spec = dict(obj.get("spec") or {})
    spec.setdefault("finalizers", ["kubernetes"])
    return {**obj, "spec": spec, "status": {"phase": "Active"}}


def _pod_on_create(obj: Object) -> Object:
    status = dict(obj.get("status") or {})
    status.setdefault("phase", "Pending")
    return {**obj, "status": status}


def _builtin(
    group: str, kind: str, plural: str, namespaced: bool, short_names: tuple[str, ...] = (), *,
    status: bool = False, generation: bool = False, subresources: tuple[str, ...] = (), name_rule: str = SUBDOMAIN,
    categories: tuple[str, ...] = (), field_labels: tuple[str, ...] = (),
    defaults: Callable[[Object], Object] | None = None, on_create: Callable[[Object], Object] | None = None,
) -> ResourceType:
    version = "v1"
    return ResourceType(
        group, version, kind, plural, namespaced, singular=kind.lower(), short_names=short_names,
        categories=categories, status_subresource=status, subresources=subresources, tracks_generation=generation,
        name_rule=name_rule, field_labels=field_labels, defaults=defaults, on_create=on_create,
    )


RBAC = "rbac.authorization.k8s.io"
ADMISSION = "admissionregistration.k8s.io"

_EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                 "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                 "reason", "reportingComponent", "source", "type")
_POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
               "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")
"""kube-apiserver's field labels for these kinds (pkg/registry/core/*/strategy.go `*ToSelectableFields`)."""

CORE_TYPES: tuple[ResourceType, ...] = (
    _builtin("", "Namespace", "namespaces", False, ("ns",), status=True, name_rule=LABEL,
             field_labels=("status.phase",), defaults=_namespace_defaults, on_create=_namespace_on_create),
    _builtin("", "Node", "nodes", False, ("no",), status=True, field_labels=("spec.unschedulable",)),
    _builtin("", "ConfigMap", "configmaps", True, ("cm",)),
    _builtin("", "Secret", "secrets", True, field_labels=("type",), defaults=_secret_defaults),
    _builtin("", "Event", "events", True, ("ev",), field_labels=_EVENT_FIELDS),
    _builtin("", "Pod", "pods", True, ("po",), status=True, subresources=("eviction", "binding"), categories=("all",),
             field_labels=_POD_FIELDS, on_create=_pod_on_create),
    _builtin("", "Service", "services", True, ("svc",), status=True, name_rule=DNS1035, categories=("all",)),
    _builtin("", "ServiceAccount", "serviceaccounts", True, ("sa",), subresources=("token",)),
    _builtin("events.k8s.io", "Event", "events", True, ("ev",)),
    _builtin("coordination.k8s.io", "Lease", "leases", True),
    _builtin("apps", "Deployment", "deployments", True, ("deploy",), status=True, generation=True,
             categories=("all",)),
    _builtin("apps", "DaemonSet", "daemonsets", True, ("ds",), status=True, generation=True, categories=("all",)),
    _builtin(RBAC, "ClusterRole", "clusterroles", False, name_rule=PATH_SEGMENT),
    _builtin(RBAC, "ClusterRoleBinding", "clusterrolebindings", False, name_rule=PATH_SEGMENT),
    _builtin(RBAC, "Role", "roles", True, name_rule=PATH_SEGMENT),
    _builtin(RBAC, "RoleBinding", "rolebindings", True, name_rule=PATH_SEGMENT),
    _builtin(ADMISSION, "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False, generation=True,
             categories=("api-extensions",)),
    _builtin(ADMISSION, "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False,
             generation=True, categories=("api-extensions",)),
    _builtin(CRD_GROUP, "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds"),
             status=True, generation=True, categories=("api-extensions",)),
)
"""The built-in kinds the operator, the daemon, the device plugin and kubectl use. A Node's status, as in
kube-apiserver, is kept on create and changed afterwards only through `/status`. Core/v1 and events.k8s.io/v1
Events are stored apart here (a real server converts between them)."""

BUILTIN_NAMESPACES: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Namespaces every cluster starts with."""


# --- names ------------------------------------------------------------------------------------------------------

_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def name_errors(rule: str, name: str) -> list[str]:
    """Why `name` is not a valid `metadata.name` under `rule`, in apimachinery's words (empty if it is)."""
    if rule == PATH_SEGMENT:
        if name in (".", ".."):
            return [f"may not be '{name}'"]
        return [f"may not contain '{c}'" for c in "/%" if c in name]
    if rule == SUBDOMAIN:
        out = ["must be no more than 253 characters"] if len(name) > 253 else []
        if not _SUBDOMAIN_RE.fullmatch(name):
            out.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                       "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                       "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
        return out
    out = ["must be no more than 63 characters"] if len(name) > 63 else []
    if rule == LABEL and not _LABEL_RE.fullmatch(name):
        out.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                   "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                   "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    if rule == DNS1035 and not _DNS1035_RE.fullmatch(name):
        out.append("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                   "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                   "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    return out


# --- CRDs -------------------------------------------------------------------------------------------------------


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One type per served version of an `apiextensions.k8s.io/v1` CustomResourceDefinition, each with its
    schema compiled. Raises `SchemaError` (or KeyError for a missing required field) on a CRD it cannot serve."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        raw_schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        subresources = version.get("subresources") or spec.get("subresources") or {}
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                status_dropped_on_create="status" in subresources,
                tracks_generation=True,
                unconditional_update=False,
                custom=True,
                crd=crd,
                schema=compile_schema(raw_schema, f"spec.versions[{version['name']}].schema.openAPIV3Schema")
                if raw_schema is not None else None,
            )
        )
    return out


def crd_problems(crd: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, error) for what kube-apiserver's CRD validation would refuse, in the cases clients meet."""
    problems: list[tuple[str, str]] = []
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return [("spec", "Required value")]
    group, names = spec.get("group"), spec.get("names") or {}
    if not group:
        problems.append(("spec.group", "Required value"))
    elif "." not in str(group):
        problems.append(("spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'))
    for key in ("plural", "kind"):
        if not names.get(key):
            problems.append((f"spec.names.{key}", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(("spec.scope", f'Unsupported value: "{spec.get("scope", "")}": supported values: '
                                       '"Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if not versions:
        problems.append(("spec.versions", "Invalid value: null: must have exactly one version marked as storage "
                                          "version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(("spec.versions", "Invalid value: " + str([v.get("name") for v in versions]) +
                         ": must have exactly one version marked as storage version"))
    want = f"{names.get('plural')}.{group}"
    name = (crd.get("metadata") or {}).get("name")
    if group and names.get("plural") and name != want:
        problems.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    if not problems:
        try:
            types_from_crd(crd)
        except SchemaError as err:
            field_name, _, detail = str(err).partition(": ")
            problems.append((field_name, detail))
    return problems


NETWORK_ATTACHMENT_DEFINITION_CRD: Mapping[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "scope": "Namespaced",
        "names": {
            "plural": "network-attachment-definitions",
            "singular": "network-attachment-definition",
            "kind": "NetworkAttachmentDefinition",
            "shortNames": ["net-attach-def"],
        },
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": {
                "description": "NetworkAttachmentDefinition is a CRD schema specified by the Network Plumbing "
                               "Working Group to express the intent for attaching pods to one or more logical or "
                               "physical networks. More information available at: "
                               "https://github.com/k8snetworkplumbingwg/multi-net-spec",
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {
                        "description": "NetworkAttachmentDefinition spec defines the desired state of a network "
                                       "attachment",
                        "type": "object",
                        "properties": {"config": {
                            "description": "NetworkAttachmentDefinition config is a JSON-formatted CNI "
                                           "configuration",
                            "type": "string",
                        }},
                    },
                },
            }},
        }],
    },
}
"""Multus's CRD (deployments/multus-daemonset.yml), which every cluster running the operator has installed."""


@functools.cache
def project_crds() -> tuple[dict[str, Any], ...]:
    """The project's CRDs, generated from the models: the one source `make crds` writes `deploy/crds/` from
    (and `make test` checks them against). Built once per process; callers must not modify them."""
    return tuple(all_crds().values())


# --- the registry -----------------------------------------------------------------------------------------------


class Registry:
    """The served types, found by the URL parts a request carries. Types come and go with CRDs while requests
    read: every change replaces the index, so readers never see one half-made."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        with self._lock:
            key = (rtype.group, rtype.version, rtype.plural)
            if key in self._by_path:
                raise ValueError(f"{rtype.group_resource}/{rtype.version} is defined twice")
            self._by_path = {**self._by_path, key: rtype}

    def replace(self, group_resource: str, types: Iterable[ResourceType]) -> None:
        """Serve exactly `types` for `group_resource` (none: stop serving it)."""
        with self._lock:
            kept = {k: t for k, t in self._by_path.items() if t.group_resource != group_resource}
            for rtype in types:
                kept[(rtype.group, rtype.version, rtype.plural)] = rtype
            self._by_path = kept

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return next((t for t in self if t.api_version == api_version and t.kind == kind), None)

    def of_resource(self, group_resource: str) -> list[ResourceType]:
        """Every served version of one resource."""
        return [t for t in self if t.group_resource == group_resource]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_path.values()))

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
