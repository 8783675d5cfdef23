"""What a user may do: kube-apiserver's RBAC authorizer over the stored Role, ClusterRole, RoleBinding and
ClusterRoleBinding objects, so a rule missing from `deploy/` fails here as it would in a cluster.

A request is first described as kube's `RequestInfoFactory` describes it (`request_attributes`): a resource
request (verb get/list/watch/create/update/patch/delete/deletecollection, API group, namespace, resource,
subresource, name) or a non-resource one (a lower-case HTTP verb and a path). It is then allowed when

- the user is in `system:masters` (kube's privileged-group bypass), or
- a rule of a role bound to the user allows it: ClusterRoleBindings everywhere, RoleBindings only in their own
  namespace (to a Role there or a ClusterRole); subjects are a User, a Group or a ServiceAccount; a rule matches
  on verbs, apiGroups, resources (`pods/status` for a subresource, `*`, `*/status`), resourceNames and, from a
  ClusterRoleBinding only, nonResourceURLs (exact, or a prefix ending in `*`).

The bootstrap roles every cluster has and that matter here are built in (`BOOTSTRAP`), not stored:
`cluster-admin`, `system:discovery` (discovery, /openapi, /version and the health endpoints for every
authenticated user) and `system:public-info-viewer`. The aggregated `admin`/`edit`/`view` roles are not.

Refusals are 403 `Forbidden` with kube's message (`configmaps "x" is forbidden: User "…" cannot get resource
"configmaps" in API group "" in the namespace "ns"`), with `: RBAC: …` naming a binding's missing role, and are
kept in `Authorizer.denials` so a test can show a component never met one.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator.sim.apiserver.authn import AUTHENTICATED, MASTERS, SERVICE_ACCOUNT_PREFIX, UserInfo
from vdpa_operator.sim.apiserver.errors import StatusError
from vdpa_operator.sim.apiserver.resources import RBAC
from vdpa_operator.sim.apiserver.selectors import selected_name
from vdpa_operator.sim.apiserver.store import Store, WatchEvent

log = logging.getLogger(__name__)

UNAUTHENTICATED = "system:unauthenticated"
DENIALS_KEPT = 1000

# --- the request, as kube's RequestInfoFactory reads it -----------------------------------------------------------

_API_PREFIXES = ("api", "apis")
_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_WATCH_VALUES = ("true", "1")
_CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")
"""Pod subresources that run something: `create` is needed for them whatever the method, so the WebSocket GET
needs what the SPDY POST needs (kube-apiserver ≥ 1.35, AuthorizePodWebsocketUpgradeCreatePermission; before it a
role with only `get` could exec over WebSocket)."""


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (kube's `authorizer.Attributes`, without the user)."""

    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes kube-apiserver authorizes a request by: `/api/v1/…` and `/apis/<group>/<version>/…` with
    at least a resource are resource requests, anything else (discovery, /version, /healthz) is not."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return Attributes(method.lower(), path, False)
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return Attributes(method.lower(), path, False)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method.upper(), "")
    if rest[0] in _SPECIAL_VERBS:
        verb, rest = rest[0], rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in _WATCH_VALUES else "list"
        name = selected_name(query.get("fieldSelector")) or ""
    if not name and verb == "delete":
        verb = "deletecollection"
    if verb == "get" and resource == "pods" and subresource in _CONNECT_SUBRESOURCES:
        verb = "create"
    return Attributes(verb, path, True, group, version, namespace, resource, subresource, name)


# --- rules --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One PolicyRule."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: tuple[str, ...] = ()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Rule:
        return cls(frozenset(raw.get("verbs") or ()), frozenset(raw.get("apiGroups") or ()),
                   tuple(raw.get("resources") or ()), frozenset(raw.get("resourceNames") or ()),
                   tuple(raw.get("nonResourceURLs") or ()))

    def allows(self, a: Attributes) -> bool:
        if not ("*" in self.verbs or a.verb in self.verbs):
            return False
        if not a.resource_request:
            return any(url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url.rstrip("*")))
                       for url in self.non_resource_urls)
        return (("*" in self.api_groups or a.api_group in self.api_groups)
                and self._resource_matches(a)
                and (not self.resource_names or a.name in self.resource_names))

    def _resource_matches(self, a: Attributes) -> bool:
        combined = a.combined_resource
        return any(r == "*" or r == combined or (a.subresource and r == f"*/{a.subresource}")
                   for r in self.resources)


_DISCOVERY_URLS = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                   "/version", "/version/")
_PUBLIC_INFO_URLS = ("/healthz", "/livez", "/readyz", "/version", "/version/")


@dataclass(frozen=True)
class BootstrapRole:
    """A ClusterRole kube-apiserver creates at start, and the groups its ClusterRoleBinding of the same name binds."""

    name: str
    rules: tuple[Rule, ...]
    groups: tuple[str, ...]


BOOTSTRAP: tuple[BootstrapRole, ...] = (
    BootstrapRole("cluster-admin", (Rule(frozenset("*"), frozenset("*"), ("*",)),
                                    Rule(frozenset("*"), non_resource_urls=("*",))), (MASTERS,)),
    BootstrapRole("system:discovery", (Rule(frozenset({"get"}), non_resource_urls=_DISCOVERY_URLS),),
                  (AUTHENTICATED,)),
    BootstrapRole("system:public-info-viewer", (Rule(frozenset({"get"}), non_resource_urls=_PUBLIC_INFO_URLS),),
                  (AUTHENTICATED, UNAUTHENTICATED)),
)


# --- the stored RBAC objects, indexed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (namespace set) or ClusterRoleBinding (namespace ""), and who it binds: `subjects` as keys
    `user:<name>` / `group:<name>` (a ServiceAccount is the user `system:serviceaccount:<ns>:<name>`, its
    namespace defaulting to the binding's, as kube's `appliesToUser`)."""

    namespace: str
    subjects: frozenset[str]
    role_kind: str
    role_name: str


def _subject_key(subject: Mapping[str, Any], namespace: str) -> str | None:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return f"user:{name}"
    if kind == "Group":
        return f"group:{name}"
    if kind == "ServiceAccount" and (subject.get("namespace") or namespace):
        return f"user:{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace') or namespace}:{name}"
    return None


def _keys_of(user: UserInfo) -> list[str]:
    return [f"user:{user.name}", *(f"group:{g}" for g in user.groups)]


Grants = tuple[tuple[Rule, ...], tuple[str, ...]]
"""The rules that apply to a user in a namespace, and why some bindings gave none (their role is missing)."""


@dataclass(frozen=True)
class Index:
    """One consistent reading of the four RBAC resources, with bindings found by subject."""

    cluster_roles: Mapping[str, tuple[Rule, ...]]
    roles: Mapping[tuple[str, str], tuple[Rule, ...]]
    cluster_bindings: Mapping[str, tuple[Binding, ...]]
    """subject key → the ClusterRoleBindings naming it."""
    bindings: Mapping[tuple[str, str], tuple[Binding, ...]]
    """(namespace, subject key) → the RoleBindings there naming it."""
    _memo: dict[tuple[str, tuple[str, ...], str], Grants] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def read(cls, store: Store) -> Index:
        def objects(plural: str) -> list[dict[str, Any]]:
            rtype = store.registry.lookup(RBAC, "v1", plural)
            return [] if rtype is None else store.list_page(rtype, None, lambda _obj: True).items

        cluster_roles = {role.name: role.rules for role in BOOTSTRAP}
        cluster_roles.update({o["metadata"]["name"]: _rules(o) for o in objects("clusterroles")})
        roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): _rules(o) for o in objects("roles")}
        cluster_bindings: dict[str, list[Binding]] = collections.defaultdict(list)
        for binding in [*(Binding("", frozenset(f"group:{g}" for g in role.groups), "ClusterRole", role.name)
                          for role in BOOTSTRAP), *(_binding(o, "") for o in objects("clusterrolebindings"))]:
            for key in binding.subjects:
                cluster_bindings[key].append(binding)
        bindings: dict[tuple[str, str], list[Binding]] = collections.defaultdict(list)
        for obj in objects("rolebindings"):
            binding = _binding(obj, obj["metadata"]["namespace"])
            for key in binding.subjects:
                bindings[(binding.namespace, key)].append(binding)
        return cls(cluster_roles, roles, {k: tuple(v) for k, v in cluster_bindings.items()},
                   {k: tuple(v) for k, v in bindings.items()})

    def grants(self, user: UserInfo, namespace: str) -> Grants:
        """The rules of every role bound to `user` that apply in `namespace` ("" for cluster-scoped requests),
        and a reason per binding whose role is missing, as kube's `VisitRulesFor` (kept per user and namespace
        for as long as this reading)."""
        memo_key = (user.name, user.groups, namespace)
        found = self._memo.get(memo_key)
        if found is None:
            found = self._memo[memo_key] = self._grants(user, namespace)
        return found

    def _grants(self, user: UserInfo, namespace: str) -> Grants:
        keys = _keys_of(user)
        seen: dict[int, tuple[Binding, bool]] = {}
        for key in keys:
            for binding in self.cluster_bindings.get(key, ()):
                seen.setdefault(id(binding), (binding, True))
            if namespace:
                for binding in self.bindings.get((namespace, key), ()):
                    seen.setdefault(id(binding), (binding, False))
        rules: list[Rule] = []
        problems: list[str] = []
        for binding, cluster in seen.values():
            granted, problem = self._role(binding, cluster_only=cluster)
            rules.extend(granted)
            if problem:
                problems.append(problem)
        return tuple(rules), tuple(problems)

    def _role(self, binding: Binding, *, cluster_only: bool) -> tuple[tuple[Rule, ...], str]:
        if binding.role_kind == "ClusterRole":
            rules = self.cluster_roles.get(binding.role_name)
            missing = f'clusterrole.{RBAC} "{binding.role_name}" not found'
        elif binding.role_kind == "Role" and not cluster_only:
            rules = self.roles.get((binding.namespace, binding.role_name))
            missing = f'role.{RBAC} "{binding.role_name}" not found'
        else:
            rules, missing = None, f'unsupported role reference kind: "{binding.role_kind}"'
        if rules is None:
            return (), missing
        if not cluster_only:
            rules = tuple(r for r in rules if not r.non_resource_urls)  # only a ClusterRoleBinding grants paths
        return rules, ""


def _rules(obj: Mapping[str, Any]) -> tuple[Rule, ...]:
    return tuple(Rule.of(r) for r in obj.get("rules") or () if isinstance(r, Mapping))


def _binding(obj: Mapping[str, Any], namespace: str) -> Binding:
    ref = obj.get("roleRef") or {}
    keys = (_subject_key(s, namespace) for s in obj.get("subjects") or () if isinstance(s, Mapping))
    return Binding(namespace, frozenset(k for k in keys if k), str(ref.get("kind", "")), str(ref.get("name", "")))


# --- the authorizer -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Denial:
    """A refused request, kept for tests and for whoever debugs a component's rights."""

    code: int
    user: str
    attributes: Attributes | None
    message: str


@dataclass
class Authorizer:
    """Decides on each request from the current RBAC objects. The index is read again after any RBAC write (a
    watch on the four resources marks it stale), so a binding applied is in force for the next request."""

    store: Store
    denials: collections.deque[Denial] = field(default_factory=lambda: collections.deque(maxlen=DENIALS_KEPT))
    allowed: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    """Requests allowed, per (user, verb, what): shows who the clients really were and what they did. `what` is
    `resource[.group][ in namespace]` or a path, so the count stays small."""

    def __post_init__(self) -> None:
        self._generation = 1
        self._index: tuple[int, Index] | None = None
        self._lock = threading.Lock()
        self._watches = [self.store.watch(rtype, None, None, lambda _e: True, self._stale)
                         for rtype in (self.store.registry.lookup(RBAC, "v1", plural) for plural in
                                       ("clusterroles", "roles", "clusterrolebindings", "rolebindings"))
                         if rtype is not None]

    def _stale(self, _event: WatchEvent) -> None:
        self._generation += 1  # called under the store's lock, so nothing more than this

    def close(self) -> None:
        for watch in self._watches:
            watch.cancel()

    def index(self) -> Index:
        with self._lock:
            generation = self._generation
            if self._index is None or self._index[0] != generation:
                self._index = (generation, Index.read(self.store))
            return self._index[1]

    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the reason names bindings whose role is missing, as kube's `RBAC: …`."""
        if MASTERS in user.groups:
            return True, ""
        rules, problems = self.index().grants(user, attributes.namespace)
        if any(rule.allows(attributes) for rule in rules):
            return True, ""
        if not problems:
            return False, ""
        return False, "RBAC: " + (problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")

    def check(self, user: UserInfo, attributes: Attributes) -> None:
        """Return when `user` may; else record the denial and raise the 403 kube-apiserver sends."""
        allowed, reason = self.authorize(user, attributes)
        if allowed:
            self.allowed[(user.name, attributes.verb, _what(attributes))] += 1
            return
        err = forbidden(user, attributes, reason)
        self.record(Denial(403, user.name, attributes, err.message))
        raise err

    def record(self, denial: Denial) -> None:
        """Keep the denial; a 403 is also logged (a 401 is not: it names nobody and may come from any prober)."""
        self.denials.append(denial)
        if denial.code == 403:
            log.warning("%s", denial.message)

    def requests_of(self, user: str) -> int:
        """How many requests `user` was allowed."""
        return sum(n for (name, _, _), n in list(self.allowed.items()) if name == user)


def _what(a: Attributes) -> str:
    if not a.resource_request:
        return a.path
    qualified = f"{a.combined_resource}.{a.api_group}" if a.api_group else a.combined_resource
    return f"{qualified} in {a.namespace}" if a.namespace else qualified


def forbidden(user: UserInfo, a: Attributes, reason: str = "") -> StatusError:
    """kube's `responsewriters.Forbidden`: `<resource>[.group] ["name"] is forbidden: User "u" cannot …`."""
    if not a.resource_request:
        detail = f'User "{user.name}" cannot {a.verb} path "{a.path}"'
    elif a.namespace:
        detail = (f'User "{user.name}" cannot {a.verb} resource "{a.combined_resource}" in API group '
                  f'"{a.api_group}" in the namespace "{a.namespace}"')
    else:
        detail = (f'User "{user.name}" cannot {a.verb} resource "{a.combined_resource}" in API group '
                  f'"{a.api_group}" at the cluster scope')
    if reason:
        detail = f"{detail}: {reason}"
    if not a.resource_request or not a.resource:
        return StatusError(403, "Forbidden", f"forbidden: {detail}")
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    return StatusError(403, "Forbidden", f"{subject} is forbidden: {detail}", name=a.name, group=a.api_group,
                       kind=a.resource)

