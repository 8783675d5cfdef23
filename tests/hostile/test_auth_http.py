"""Who may do what on the embedded API server, over real HTTPS, compared with kube-apiserver's answers.

Authentication: no token, a wrong, expired, foreign-audience or orphaned token is 401 `Unauthorized`, on every
path. ServiceAccount tokens come from the TokenRequest subresource (also through the real `kubectl create token`)
and authenticate as `system:serviceaccount:<ns>:<name>`. Authorization: RBAC from the stored objects, each case a
rule and the requests it allows and refuses, refusals worded as kube-apiserver words them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from vdpa_operator.sim.apiserver import ServerHandle, default_store, serve_in_thread
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES

NS, OTHER = "team-a", "team-b"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
KUBECTL = Path(sys.executable).with_name("kubectl")
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerHandle]:
    store = default_store(namespaces=(*BUILTIN_NAMESPACES, NS, OTHER))
    with serve_in_thread(tmp_path / "kubeconfig", store=store) as handle:
        yield handle


@pytest.fixture
def admin(api: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=10) as client:
        yield client


def as_token(api: ServerHandle, token: str | None) -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=api.url, headers=headers, verify=api.verify, timeout=10)


def service_account(admin: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    """The ServiceAccount, created if missing."""
    found = admin.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
    if found.status_code == 200:
        return dict(found.json())
    created = admin.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", json={"metadata": {"name": name}})
    assert created.status_code == 201, created.text
    return dict(created.json())


def token_request(admin: httpx.Client, namespace: str, name: str, **spec: Any) -> httpx.Response:
    return admin.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                      json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})


def token_of(admin: httpx.Client, namespace: str, name: str) -> str:
    service_account(admin, namespace, name)
    answer = token_request(admin, namespace, name)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["status"]["token"])


# --- authentication -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/namespaces", "/version", "/healthz", "/apis", "/no/such/path",
                                  f"/api/v1/namespaces/{NS}/configmaps/x"])
@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer wrong", "Basic dmRwYTp2ZHBh",
                                           "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."])
def test_without_a_valid_token_every_path_is_401_unauthorized(api: ServerHandle, path: str,
                                                               authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with as_token(api, None) as client:
        answer = client.get(path, headers=headers)
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)


def test_the_kubeconfig_is_the_admins_and_may_do_anything(api: ServerHandle, admin: httpx.Client) -> None:
    assert admin.get("/api/v1/nodes").status_code == 200
    assert admin.post(f"{RBAC}/clusterroles", json={"metadata": {"name": "anything"}, "rules": []}).status_code == 201
    assert admin.delete(f"{RBAC}/clusterroles/anything").status_code == 200
    assert api.authorizer.requests_of("vdpa-admin") >= 3


def test_a_token_request_gives_a_token_that_authenticates_as_the_service_account(admin: httpx.Client,
                                                                                   api: ServerHandle) -> None:
    service_account(admin, NS, "reader")
    answer = token_request(admin, NS, "reader", expirationSeconds=1200)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["kind"], body["apiVersion"], body["spec"]["expirationSeconds"]) == (
        "TokenRequest", "authentication.k8s.io/v1", 1200)
    assert body["status"]["expirationTimestamp"].endswith("Z")
    with as_token(api, body["status"]["token"]) as reader:
        assert reader.get("/version").status_code == 200  # discovery: every authenticated user
        refused = reader.get(f"/api/v1/namespaces/{NS}/configmaps/x")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        'configmaps "x" is forbidden: User "system:serviceaccount:team-a:reader" cannot get resource "configmaps" '
        'in API group "" in the namespace "team-a"')


@pytest.mark.parametrize(("account", "spec", "code", "message"), [
    ("nobody", {}, 404, 'serviceaccounts "nobody" not found'),
    ("reader", {"expirationSeconds": 60}, 422,
     'TokenRequest.authentication.k8s.io "reader" is invalid: spec.expirationSeconds: Invalid value: 60: may not '
     'specify a duration less than 10 minutes'),
    ("reader", {"expirationSeconds": "1h"}, 400, "spec.expirationSeconds: must be a whole number of seconds"),
    ("reader", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "gone"}}, 404, 'pods "gone" not found'),
    ("reader", {"boundObjectRef": {"kind": "Deployment", "name": "x"}}, 422, 'Unsupported value: "Deployment"'),
    ("reader", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}}, 400,
     'cannot bind token for serviceaccount "team-a/reader" to pod running with different serviceaccount name.'),
])
def test_token_requests_the_api_refuses(admin: httpx.Client, account: str, spec: dict[str, Any], code: int,
                                        message: str) -> None:
    service_account(admin, NS, "reader")
    admin.post(f"/api/v1/namespaces/{NS}/pods", json={"metadata": {"name": "web"},
                                                      "spec": {"serviceAccountName": "web", "containers": []}})
    answer = token_request(admin, NS, account, **spec)
    assert answer.status_code == code and message in answer.json()["message"], answer.text


def test_a_token_ends_with_its_service_account_its_pod_its_audience_and_its_time(admin: httpx.Client,
                                                                                  api: ServerHandle) -> None:
    service_account(admin, NS, "short-lived")
    pod = admin.post(f"/api/v1/namespaces/{NS}/pods", json={
        "metadata": {"name": "app"}, "spec": {"serviceAccountName": "short-lived", "containers": []}}).json()
    pod_token = api.token_for(NS, "short-lived", pod=("app", pod["metadata"]["uid"]))
    expiring = api.token_for(NS, "short-lived", expiration_seconds=1)
    other_audience = token_request(admin, NS, "short-lived", audiences=["vault"]).json()["status"]["token"]
    plain = token_of(admin, NS, "short-lived")
    with as_token(api, pod_token) as client:
        assert client.get("/version").status_code == 200
    assert as_token(api, other_audience).get("/version").status_code == 401, "a token for another audience"

    admin.delete(f"/api/v1/namespaces/{NS}/pods/app")
    assert as_token(api, pod_token).get("/version").status_code == 401, "its pod is gone"
    assert as_token(api, plain).get("/version").status_code == 200

    time.sleep(1.1)
    assert as_token(api, expiring).get("/version").status_code == 401, "expired"

    admin.delete(f"/api/v1/namespaces/{NS}/serviceaccounts/short-lived")
    assert as_token(api, plain).get("/version").status_code == 401, "its ServiceAccount is gone"
    service_account(admin, NS, "short-lived")  # same name, new uid: the old token stays dead
    assert as_token(api, plain).get("/version").status_code == 401


@pytest.mark.skipif(not KUBECTL.exists(), reason=f"no kubectl at {KUBECTL}")
def test_kubectl_create_token_works_against_it(api: ServerHandle, admin: httpx.Client, tmp_path: Path) -> None:
    service_account(admin, NS, "from-kubectl")
    env = {"HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}
    done = subprocess.run([str(KUBECTL), "--kubeconfig", str(api.kubeconfig_path), "create", "token",
                           "from-kubectl", "-n", NS, "--duration", "15m"], capture_output=True, text=True, env=env,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    with as_token(api, done.stdout.strip()) as client:
        refused = client.get("/api/v1/nodes")
    assert refused.status_code == 403
    assert 'User "system:serviceaccount:team-a:from-kubectl" cannot list resource "nodes"' in refused.json()["message"]


# --- authorization --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Rules bound to the ServiceAccount `NS/subject`, and requests with the status each must get."""

    name: str
    rules: list[dict[str, Any]]
    requests: list[tuple[str, str, int]]
    """(method, path, status): 403 is a refusal, anything else means RBAC let it through."""
    cluster: bool = False
    """ClusterRole + ClusterRoleBinding instead of Role + RoleBinding in NS."""
    binding_kind: str = "Role"
    subject: dict[str, str] | None = None


CM = f"/api/v1/namespaces/{NS}/configmaps"
CASES = [
    Case("verbs-and-resources", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}], [
        ("GET", f"{CM}/absent", 404), ("GET", CM, 200), ("GET", f"{CM}?watch=true&timeoutSeconds=0", 403),
        ("POST", CM, 403), ("DELETE", f"{CM}/absent", 403), ("DELETE", CM, 403),
        ("GET", f"/api/v1/namespaces/{OTHER}/configmaps", 403), ("GET", "/api/v1/configmaps", 403),
        ("GET", f"/api/v1/namespaces/{NS}/secrets", 403)]),
    Case("resource-names", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
                             "resourceNames": ["mine"]}], [
        ("GET", f"{CM}/mine", 404), ("GET", f"{CM}/theirs", 403), ("GET", CM, 403),
        ("GET", f"{CM}?fieldSelector=metadata.name%3Dmine", 200),
        ("GET", f"{CM}?fieldSelector=metadata.name%3Dtheirs", 403)]),
    Case("subresources", [{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get", "patch"]}], [
        ("GET", f"/api/v1/namespaces/{NS}/pods/absent/status", 404),
        ("GET", f"/api/v1/namespaces/{NS}/pods/absent", 403),
        ("POST", f"/api/v1/namespaces/{NS}/pods/absent/eviction", 403)]),
    Case("star-subresource", [{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]}], [
        ("GET", f"/api/v1/namespaces/{NS}/pods/absent/status", 404),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/absent/status", 404),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/absent", 403)]),
    Case("wildcards", [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}], [
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments", 200),
        ("DELETE", f"/apis/apps/v1/namespaces/{NS}/daemonsets", 405),  # allowed: the server has no deletecollection
        ("GET", f"{CM}/absent", 403)]),
    Case("cluster-scope", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                           {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}], [
        ("GET", "/api/v1/nodes/absent", 404), ("GET", "/api/v1/nodes", 403), ("GET", f"{CM}/absent", 403),
        ("GET", "/metrics", 404), ("GET", "/logs/a/b", 404), ("GET", "/logz", 403)], cluster=True),
    Case("cluster-role-in-a-namespace", [{"apiGroups": [""], "resources": ["configmaps", "nodes"], "verbs": ["get"]},
                                         {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}], [
        ("GET", f"{CM}/absent", 404), ("GET", f"/api/v1/namespaces/{OTHER}/configmaps/absent", 403),
        ("GET", "/api/v1/nodes/absent", 403), ("GET", "/metrics", 403)], binding_kind="ClusterRole"),
    Case("group-subject", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], [
        ("GET", CM, 200)], subject={"kind": "Group", "name": f"system:serviceaccounts:{NS}"}),
    Case("user-subject", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], [
        ("GET", CM, 200)], subject={"kind": "User", "name": f"system:serviceaccount:{NS}:user-subject"}),
    Case("another-account", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], [
        ("GET", CM, 403)], subject={"kind": "ServiceAccount", "name": "someone-else", "namespace": NS}),
    Case("the-right-name-elsewhere", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], [
        ("GET", CM, 403)], subject={"kind": "ServiceAccount", "name": "the-right-name-elsewhere",
                                    "namespace": OTHER}),
]


def _bind(admin: httpx.Client, case: Case) -> None:
    subject = case.subject or {"kind": "ServiceAccount", "name": case.name, "namespace": NS}
    role_kind = "ClusterRole" if case.cluster or case.binding_kind == "ClusterRole" else "Role"
    roles = f"{RBAC}/clusterroles" if role_kind == "ClusterRole" else f"{RBAC}/namespaces/{NS}/roles"
    bindings = f"{RBAC}/clusterrolebindings" if case.cluster else f"{RBAC}/namespaces/{NS}/rolebindings"
    for url, body in ((roles, {"metadata": {"name": case.name}, "rules": case.rules}),
                      (bindings, {"metadata": {"name": case.name}, "subjects": [subject],
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                              "name": case.name}})):
        created = admin.post(url, json=body)
        assert created.status_code == 201, created.text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rbac_allows_what_a_rule_grants_and_nothing_more(api: ServerHandle, admin: httpx.Client, case: Case) -> None:
    token = token_of(admin, NS, case.name)
    _bind(admin, case)
    with as_token(api, token) as client:
        got = [(method, path, client.request(method, path).status_code) for method, path, _ in case.requests]
    assert got == case.requests


@pytest.mark.parametrize(("method", "path", "message"), [
    ("GET", f"{CM}/x", 'configmaps "x" is forbidden: User "system:serviceaccount:team-a:nobody" cannot get resource '
                       '"configmaps" in API group "" in the namespace "team-a"'),
    ("GET", CM, 'configmaps is forbidden: User "system:serviceaccount:team-a:nobody" cannot list resource "configmaps" '
                'in API group "" in the namespace "team-a"'),
    ("DELETE", CM, 'configmaps is forbidden: User "system:serviceaccount:team-a:nobody" cannot deletecollection '
                   'resource "configmaps" in API group "" in the namespace "team-a"'),
    ("GET", "/api/v1/nodes/n1", 'nodes "n1" is forbidden: User "system:serviceaccount:team-a:nobody" cannot get '
                                'resource "nodes" in API group "" at the cluster scope'),
    ("PATCH", "/api/v1/nodes/n1/status", 'nodes "n1" is forbidden: User "system:serviceaccount:team-a:nobody" cannot '
                                         'patch resource "nodes/status" in API group "" at the cluster scope'),
    ("GET", "/apis/sriovnetwork.openshift.io/v1/sriovnetworknodestates?watch=1",
     'sriovnetworknodestates.sriovnetwork.openshift.io is forbidden: User "system:serviceaccount:team-a:nobody" '
     'cannot watch resource "sriovnetworknodestates" in API group "sriovnetwork.openshift.io" at the cluster scope'),
    ("GET", "/metrics", 'forbidden: User "system:serviceaccount:team-a:nobody" cannot get path "/metrics"'),
])
def test_refusals_are_worded_as_kube_apiserver_words_them(api: ServerHandle, admin: httpx.Client, method: str,
                                                          path: str, message: str) -> None:
    with as_token(api, token_of(admin, NS, "nobody")) as client:
        answer = client.request(method, path)
    assert answer.status_code == 403
    body = answer.json()
    assert (body["kind"], body["status"], body["reason"], body["code"], body["message"]) == (
        "Status", "Failure", "Forbidden", 403, message)
    assert any(d.message == message for d in api.authorizer.denials), "the server keeps what it refused"


def test_a_server_side_apply_that_creates_needs_create(api: ServerHandle, admin: httpx.Client) -> None:
    case = Case("patcher", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}], [])
    token = token_of(admin, NS, case.name)
    _bind(admin, case)
    apply = {"Content-Type": "application/apply-patch+yaml"}
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}})
    with as_token(api, token) as client:
        refused = client.patch(f"{CM}/applied?fieldManager=t", content=body, headers=apply)
        assert (refused.status_code, refused.json()["message"]) == (403, (
            'configmaps "applied" is forbidden: User "system:serviceaccount:team-a:patcher" cannot create resource '
            '"configmaps" in API group "" in the namespace "team-a"'))
        admin.post(CM, json={"metadata": {"name": "applied"}})
        assert client.patch(f"{CM}/applied?fieldManager=t", content=body, headers=apply).status_code == 200


def test_a_binding_to_a_missing_role_is_named_in_the_refusal(api: ServerHandle, admin: httpx.Client) -> None:
    token = token_of(admin, NS, "dangling")
    admin.post(f"{RBAC}/namespaces/{NS}/rolebindings", json={
        "metadata": {"name": "dangling"}, "subjects": [{"kind": "ServiceAccount", "name": "dangling", "namespace": NS}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "not-written-yet"}})
    with as_token(api, token) as client:
        refused = client.get(f"{CM}/x")
        assert refused.json()["message"].endswith(
            ': RBAC: role.rbac.authorization.k8s.io "not-written-yet" not found')
        # Writing the role is enough: the next request sees it.
        admin.post(f"{RBAC}/namespaces/{NS}/roles", json={"metadata": {"name": "not-written-yet"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
        assert client.get(f"{CM}/x").status_code == 404
        admin.delete(f"{RBAC}/namespaces/{NS}/rolebindings/dangling")
        assert client.get(f"{CM}/x").status_code == 403


def test_discovery_is_open_to_every_authenticated_user(api: ServerHandle, admin: httpx.Client) -> None:
    with as_token(api, token_of(admin, OTHER, "discoverer")) as client:
        for path in ("/api", "/api/v1", "/apis", "/apis/sriovnetwork.openshift.io",
                     "/apis/sriovnetwork.openshift.io/v1", "/version", "/openapi/v3", "/healthz", "/readyz"):
            assert client.get(path).status_code == 200, path
        token_path = f"/api/v1/namespaces/{OTHER}/serviceaccounts/discoverer/token"
        assert client.post(token_path, json={"spec": {}}).status_code == 403, "a token mints no other tokens"
