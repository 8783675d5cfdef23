"""Least privilege: each component may make the API calls it makes, and nothing it is granted goes unused.

The calls are listed per component with the code (or upstream behaviour) that makes them. The RBAC objects in
deploy/ are evaluated the way kube-apiserver's RBAC authorizer does (bindings → roles → rules, a Role only in its
own namespace, resourceNames limiting by name), so the test checks what the cluster would allow, not the YAML.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
from deploy_support import NAMESPACE, Obj, plain_objects

from vdpa_operator.api.models import GROUP
from vdpa_operator.render.deviceplugin import CONFIGMAP_NAME

NAD = "k8s.cni.cncf.io"
ADMISSION = "admissionregistration.k8s.io"
WEBHOOK_CONFIG = "sriov-operator-webhook-config"
INJECTOR_CONFIG = "network-resources-injector-config"
TENANT = "tenant-a"
"""A user namespace: NetworkAttachmentDefinitions and pods to drain live outside the operator's."""
CLUSTER = ""
"""The namespace of a call on a cluster-scoped resource."""

OPERATOR, DAEMON, DEVICE_PLUGIN = "vdpa-operator", "vdpa-config-daemon", "vdpa-device-plugin"


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str
    """`plural` or `plural/subresource`."""
    namespace: str
    name: str = ""
    why: str = ""


def _each(verbs: str, group: str, resources: str, namespace: str, name: str = "", why: str = "") -> list[Call]:
    return [Call(v, group, r, namespace, name, why) for v in verbs.split() for r in resources.split()]


NETWORKS = "sriovnetworks sriovibnetworks ovsnetworks"
OWN_KINDS = "sriovnetworknodepolicies sriovnetworkpoolconfigs sriovoperatorconfigs"
LEASE = "a56def2a.openshift.io"

CALLS: dict[str, list[Call]] = {
    OPERATOR: [
        *_each("get list watch", GROUP, OWN_KINDS, NAMESPACE, why="informers (controller/informer_cache.py)"),
        *_each("get list watch patch", GROUP, NETWORKS, TENANT,
               why="informers in every namespace, finalizer and annotation patches (controller/networks.py)"),
        *_each("patch", GROUP, " ".join(f"{k}/status" for k in NETWORKS.split()), TENANT,
               why="the Ready condition (controller/networks.py _set_ready)"),
        Call("update", GROUP, "sriovoperatorconfigs/finalizers", NAMESPACE, "default",
             why="blockOwnerDeletion owner references to it under OwnerReferencesPermissionEnforcement"),
        *_each("get list watch create patch delete", GROUP, "sriovnetworknodestates", NAMESPACE,
               why="node-state lifecycle and drain annotations (controller/sync.py, controller/drain.py)"),
        *_each("get create update", "", "configmaps", NAMESPACE, CONFIGMAP_NAME, why="controller/sync.py"),
        Call("get", "", "configmaps", NAMESPACE, "supported-nic-ids", why="controller/service.py"),
        *_each("get create update", "coordination.k8s.io", "leases", NAMESPACE, LEASE, why="controller/leader.py"),
        *_each("get update", "", "secrets", NAMESPACE, "operator-webhook-cert",
               why="controller/webhook.py: the shared webhook certificate"),
        Call("create", "", "secrets", NAMESPACE, why="controller/webhook.py: the shared webhook certificate"),
        *_each("get list watch patch", "", "nodes", CLUSTER, why="node informer, device-plugin label, cordon"),
        Call("list", "", "pods", TENANT, why="drain: the pods on a node, in every namespace"),
        Call("create", "", "pods/eviction", TENANT, why="drain"),
        Call("get", "", "namespaces", CLUSTER, TENANT, why="a network's target namespace must exist"),
        *_each("list watch", "", "namespaces", CLUSTER, why="a network waiting for its namespace (networks.py)"),
        Call("create", "", "events", "default", why="events on Nodes go to the default namespace"),
        Call("create", "", "events", NAMESPACE, why="events on NodeStates and policies"),
        *_each("get list watch create update delete", NAD, "network-attachment-definitions", TENANT,
               why="one NAD per network in its target namespace (controller/networks.py)"),
        *_each("patch", ADMISSION, "mutatingwebhookconfigurations validatingwebhookconfigurations", CLUSTER,
               WEBHOOK_CONFIG, why="controller/webhook.py register_webhooks: its CA into the caBundle"),
        *_each("create", ADMISSION, "mutatingwebhookconfigurations validatingwebhookconfigurations", CLUSTER,
               why="register_webhooks creates them when missing (create carries no name for RBAC)"),
        *_each("patch delete", ADMISSION, "mutatingwebhookconfigurations", CLUSTER, INJECTOR_CONFIG,
               why="controller/injector_webhook.py sync_configuration: kept while enableInjector, else deleted"),
        *_each("get list watch", NAD, "network-attachment-definitions", "kube-system",
               why="controller/injector_webhook.py nad_lookup: the NADs a pod names, e.g. the seed's in kube-system"),
    ],
    DAEMON: [
        *_each("get list watch", GROUP, "sriovnetworknodestates", NAMESPACE, "", "daemon/kube.py: get, list+watch"),
        Call("patch", GROUP, "sriovnetworknodestates", NAMESPACE, why="daemon/kube.py: desired-state annotation"),
        Call("patch", GROUP, "sriovnetworknodestates/status", NAMESPACE, why="daemon/kube.py: status"),
        Call("get", GROUP, "sriovoperatorconfigs", NAMESPACE, "default", why="daemon/kube.py: disableDrain"),
        Call("create", "", "events", NAMESPACE, why="daemon/kube.py: events on its NodeState"),
        *_each("get patch", "", "nodes", CLUSTER, why="daemon/kube.py: sriovnetwork.openshift.io/state annotation"),
        # The same pod's second container, `vdpactl cni-server`, runs as the same ServiceAccount.
        Call("get", "", "nodes", CLUSTER, "worker-0",
             why="cli/cni.py _node_subnet: k8s.ovn.org/node-subnets, else spec.podCIDR, of its own node"),
        Call("get", "", "pods", TENANT, "app-0",
             why="cli/cni.py pod_annotation: k8s.ovn.org/pod-networks of the pod an ADD without ipam is for"),
    ],
    DEVICE_PLUGIN: [],
}

FORBIDDEN: dict[str, list[Call]] = {
    OPERATOR: [
        Call("get", "", "secrets", NAMESPACE),
        Call("list", "", "secrets", TENANT),
        Call("delete", "", "nodes", CLUSTER, "worker-0"),
        Call("delete", "", "pods", TENANT, "app-0"),
        Call("update", ADMISSION, "validatingwebhookconfigurations", CLUSTER, "someone-elses-webhook"),
        Call("delete", ADMISSION, "mutatingwebhookconfigurations", CLUSTER, WEBHOOK_CONFIG),
        Call("delete", ADMISSION, "validatingwebhookconfigurations", CLUSTER, INJECTOR_CONFIG),
        Call("patch", ADMISSION, "mutatingwebhookconfigurations", CLUSTER, "someone-elses-webhook"),
        Call("create", GROUP, "sriovnetworknodepolicies", NAMESPACE),
        Call("list", GROUP, "sriovnetworknodestates", TENANT),
        Call("create", "rbac.authorization.k8s.io", "clusterrolebindings", CLUSTER),
        Call("update", "", "configmaps", "kube-system", "kubeadm-config"),
        Call("delete", "", "configmaps", NAMESPACE, CONFIGMAP_NAME),
        Call("get", "", "configmaps", NAMESPACE, "someone-elses"),
        Call("update", "coordination.k8s.io", "leases", NAMESPACE, "someone-elses"),
        Call("update", GROUP, "sriovnetworkpoolconfigs", NAMESPACE, "pool"),
        Call("update", GROUP, "sriovnetworknodepolicies/status", NAMESPACE, "policy"),
    ],
    DAEMON: [
        Call("create", GROUP, "sriovnetworknodestates", NAMESPACE),
        Call("delete", GROUP, "sriovnetworknodestates", NAMESPACE, "worker-0"),
        Call("patch", GROUP, "sriovnetworknodestates", "kube-system", "worker-0"),
        Call("update", GROUP, "sriovoperatorconfigs", NAMESPACE, "default"),
        Call("list", "", "pods", TENANT),
        Call("watch", "", "pods", TENANT),
        Call("patch", "", "pods", TENANT, "app-0"),
        Call("get", "", "pods/log", TENANT, "app-0"),
        Call("list", "", "nodes", CLUSTER),
        Call("get", "", "secrets", NAMESPACE),
        Call("get", "", "configmaps", NAMESPACE, CONFIGMAP_NAME),
        Call("get", GROUP, "sriovoperatorconfigs", NAMESPACE, "another"),
    ],
    DEVICE_PLUGIN: [
        Call("get", "", "nodes", CLUSTER, "worker-0"),
        Call("get", "", "configmaps", NAMESPACE, CONFIGMAP_NAME),
    ],
}


# --- kube-apiserver's RBAC evaluation, for the objects in deploy/ -----------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One rule as it applies to one subject: `namespace` None means every namespace and cluster-scoped objects."""

    namespace: str | None
    rule: Obj

    def allows(self, call: Call) -> bool:
        if self.namespace is not None and call.namespace != self.namespace:
            return False
        rule = self.rule
        names = rule.get("resourceNames") or []
        return (
            call.verb in rule["verbs"]
            and call.group in rule["apiGroups"]
            and call.resource in rule["resources"]
            and (not names or call.name in names)
        )


@functools.cache
def _objects() -> tuple[Obj, ...]:
    return tuple(plain_objects(sample=False))


@functools.cache
def grants(service_account: str) -> tuple[Grant, ...]:
    """The rules bound to `<NAMESPACE>/<service_account>`, with where each applies."""
    objects = _objects()
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in {"Role", "ClusterRole"}}
    found: list[Grant] = []
    for binding in (o for o in objects if o["kind"] in {"RoleBinding", "ClusterRoleBinding"}):
        subjects = binding.get("subjects") or []
        if not any(s["kind"] == "ServiceAccount" and s["name"] == service_account and s["namespace"] == NAMESPACE
                   for s in subjects):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace")  # None for a ClusterRoleBinding
        role = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        found.extend(Grant(scope, rule) for rule in role["rules"])
    return tuple(found)


def allowed(service_account: str, call: Call) -> bool:
    return any(g.allows(call) for g in grants(service_account))


def _atoms(grant: Grant) -> list[tuple[str | None, str, str, str, str]]:
    rule = grant.rule
    return [(grant.namespace, group, resource, verb, name)
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
            for name in rule.get("resourceNames") or [""]]


def _label(call: Call) -> str:
    where = f" in {call.namespace}" if call.namespace else ""
    return f"{call.verb} {call.group or 'core'}/{call.resource}{' ' + call.name if call.name else ''}{where}"


# --- The tests -------------------------------------------------------------------------------------------------


def test_every_workload_runs_as_a_component_listed_here() -> None:
    used = {o["spec"]["template"]["spec"]["serviceAccountName"] for o in _objects()
            if o["kind"] in {"Deployment", "DaemonSet"}}
    assert used == set(CALLS)


def test_no_rule_uses_a_wildcard_or_a_non_resource_url() -> None:
    for role in (o for o in _objects() if o["kind"] in {"Role", "ClusterRole"}):
        for rule in role["rules"]:
            fields = [*rule["verbs"], *rule["resources"], *rule["apiGroups"], *rule.get("resourceNames", [])]
            assert not any("*" in f for f in fields), f"{role['kind']} {role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule, f"{role['kind']} {role['metadata']['name']}: {rule}"


@pytest.mark.parametrize("component", sorted(CALLS))
def test_each_call_the_component_makes_is_allowed(component: str) -> None:
    denied = [f"{_label(c)} ({c.why})" for c in CALLS[component] if not allowed(component, c)]
    assert not denied, f"{component} may not: " + "; ".join(denied)


@pytest.mark.parametrize("component", sorted(FORBIDDEN))
def test_calls_outside_the_components_work_are_denied(component: str) -> None:
    wrongly = [_label(c) for c in FORBIDDEN[component] if allowed(component, c)]
    assert not wrongly, f"{component} is allowed more than it needs: " + "; ".join(wrongly)


@pytest.mark.parametrize("component", sorted(CALLS))
def test_every_grant_is_used_by_some_call(component: str) -> None:
    """Nothing granted goes unused, and a cluster-wide grant is used outside the operator's namespace (else a
    Role would do)."""
    unused = []
    for grant in grants(component):
        for atom in _atoms(grant):
            namespace, group, resource, verb, name = atom
            calls = [c for c in CALLS[component] if (c.group, c.resource, c.verb) == (group, resource, verb)
                     and (not name or c.name == name) and Grant(namespace, grant.rule).allows(c)]
            if not calls:
                unused.append(atom)
            elif namespace is None and all(c.namespace == NAMESPACE for c in calls):
                unused.append((*atom, "cluster-wide but used only in its own namespace: make it a Role"))
    assert not unused, f"{component}: " + "; ".join(map(str, unused))


def test_the_device_plugin_gets_no_api_token() -> None:
    """It reads its configuration from a mounted ConfigMap and talks only to the kubelet."""
    objects = _objects()
    account = next(o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == DEVICE_PLUGIN)
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == DEVICE_PLUGIN)
    assert account["automountServiceAccountToken"] is False
    assert daemonset["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not grants(DEVICE_PLUGIN)


def test_the_authorizer_here_denies_what_rbac_denies() -> None:
    """The evaluation above, on rules whose outcome kube-apiserver documents: a Role does not reach another
    namespace, resourceNames limit by name, an unbound ServiceAccount gets nothing."""
    role = Grant(NAMESPACE, {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                             "resourceNames": ["a"]})
    assert role.allows(Call("get", "", "configmaps", NAMESPACE, "a"))
    assert not role.allows(Call("get", "", "configmaps", NAMESPACE, "b"))
    assert not role.allows(Call("get", "", "configmaps", "other", "a"))
    assert not role.allows(Call("list", "", "configmaps", NAMESPACE))
    assert not role.allows(Call("get", "apps", "configmaps", NAMESPACE, "a"))
    assert not grants("nobody")
