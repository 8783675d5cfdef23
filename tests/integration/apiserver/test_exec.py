"""`kubectl exec` and `kubectl logs` (the real binaries: the system's and the virtualenv's) against the embedded API
server, proxied to a real streaming server whose pod is a real network namespace; and `kubeexec.exec_in_pod`
over the same path."""

from __future__ import annotations

import fcntl
import os
import secrets
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integration.apiserver.streaming_support import (
    LINK,
    Containers,
    add_pod,
    admin,
    network_namespace,
    running_kubelet,
    sleeping,
)
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.sim.kubelet.streaming import ContainerView

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes a network namespace: needs root")

KUBECTLS = [p for p in (Path("/usr/bin/kubectl"), Path(__file__).resolve().parents[3] / ".venv/bin/kubectl")
            if p.exists()]
"""The system's kubectl (the version a user of the seed runs) and the one the dev extras install."""
if not KUBECTLS:
    pytest.skip("no kubectl installed", allow_module_level=True)


@dataclass
class Cluster:
    api: ServerHandle
    pods: Containers
    netns: Path
    home: Path
    env: dict[str, str]

    def view(self, pod: str, *, log: Path | None = None, running: bool = True, container: str = "main") -> None:
        self.pods.views[("default", pod, container)] = ContainerView(
            self.netns, log, {"PATH": os.environ["PATH"]}, running=running)

    def kubectl(self, kubectl: Path, *args: str, stdin: bytes | None = None,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        env = {**self.env, "KUBECONFIG": str(kubeconfig or self.api.kubeconfig_path)}
        return subprocess.run([str(kubectl), *args], env=env, input=stdin, capture_output=True, timeout=30,
                              check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("exec")
    api = serve_in_thread(home / "kubeconfig")
    pods = Containers()
    try:
        with network_namespace() as netns, running_kubelet(api, pods):
            env = {"PATH": os.environ["PATH"], "HOME": str(home)}
            yield Cluster(api, pods, netns, home, env)
    finally:
        api.stop()


@pytest.fixture(params=KUBECTLS, ids=lambda p: str(p))
def kubectl(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def _pod(cluster: Cluster, **kwargs: object) -> str:
    name = f"p-{secrets.token_hex(3)}"
    add_pod(cluster.api, name, **kwargs)  # type: ignore[arg-type]
    return name


def _link_names(text: str) -> set[str]:
    return {line.split(":")[1].strip().split("@")[0] for line in text.splitlines() if line.strip()}


def test_exec_runs_the_command_in_the_pods_network_namespace(cluster: Cluster, kubectl: Path) -> None:
    pod = _pod(cluster)
    cluster.view(pod)
    done = cluster.kubectl(kubectl, "exec", pod, "--", "ip", "-o", "link")
    assert done.returncode == 0, done.stderr
    inside = subprocess.run(["ip", "-n", cluster.netns.name, "-o", "link"], capture_output=True, text=True,
                            check=True).stdout
    host = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert _link_names(done.stdout.decode()) == _link_names(inside)
    assert LINK in _link_names(done.stdout.decode()) and LINK not in _link_names(host)


def test_exec_forwards_stdin_keeps_stderr_apart_and_passes_the_exit_code_on(cluster: Cluster, kubectl: Path) -> None:
    pod = _pod(cluster)
    cluster.view(pod)
    data = secrets.token_bytes(100_000)
    echoed = cluster.kubectl(kubectl, "exec", "-i", pod, "--", "cat", stdin=data)
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == data

    failed = cluster.kubectl(kubectl, "exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert failed.returncode == 3
    assert failed.stdout == b"out\n"
    assert failed.stderr.startswith(b"err\n")

    missing = cluster.kubectl(kubectl, "exec", pod, "--", "no-such-command-here")
    assert missing.returncode != 0
    assert b'"no-such-command-here": executable file not found in $PATH' in missing.stderr


def _on_a_terminal(cluster: Cluster, kubectl: Path, args: list[str], *, rows: int, cols: int,
                   answer: tuple[bytes, bytes] | None = None) -> tuple[int, bytes]:
    """Run kubectl with a pseudo-terminal of rows×cols as its stdio; once its output shows answer[0], type
    answer[1]. (exit code, everything it printed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**cluster.env, "KUBECONFIG": str(cluster.api.kubeconfig_path)}
    process = subprocess.Popen([str(kubectl), *args], env=env, stdin=slave, stdout=slave, stderr=slave,
                               start_new_session=True)
    os.close(slave)
    printed, typed, deadline = b"", answer is None, time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 0.1)
            if readable:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: kubectl has exited and closed the terminal
                    break
                printed += chunk
            if answer is not None and not typed and answer[0] in printed:
                os.write(master, answer[1])
                typed = True
            if process.poll() is not None and not readable:
                break
        return process.wait(5), printed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_exec_it_gets_a_terminal_of_the_clients_size_with_job_control(cluster: Cluster, kubectl: Path) -> None:
    pod = _pod(cluster)
    cluster.view(pod)
    script = "stty size; tty; echo TERM=$TERM; read line; echo got:$line; exit 4"
    code, printed = _on_a_terminal(cluster, kubectl, ["exec", "-it", pod, "--", "sh", "-c", script],
                                   rows=33, cols=77, answer=(b"/dev/pts/", b"typed\r"))
    lines = printed.decode(errors="replace").splitlines()
    assert code == 4, printed
    assert "33 77" in lines and any(line.startswith("/dev/pts/") for line in lines)
    assert "got:typed" in lines and "TERM=xterm" in lines

    # the seed's own check, verbatim in form: what the pod's eth0 is, as the namespace's ethtool says
    code, printed = _on_a_terminal(cluster, kubectl, ["exec", "-it", pod, "--", "ethtool", "-i", "eth0"],
                                   rows=24, cols=80)
    inside = subprocess.run(["ip", "netns", "exec", cluster.netns.name, "ethtool", "-i", "eth0"],
                            capture_output=True, check=True).stdout
    assert code == 0 and printed.replace(b"\r\n", b"\n") == inside

    # ^C typed on the client's terminal is SIGINT to the command: its terminal is its controlling terminal
    code, printed = _on_a_terminal(cluster, kubectl, ["exec", "-it", pod, "--", "sh", "-c", "echo ready; sleep 30"],
                                   rows=24, cols=80, answer=(b"ready", b"\x03"))
    assert code == 130, printed


def test_logs_print_tail_and_follow_the_containers_log(cluster: Cluster, tmp_path: Path) -> None:
    kubectl = KUBECTLS[0]
    pod = _pod(cluster)
    log = tmp_path / "main.log"
    log.write_bytes(b"one\ntwo\nthree\n")
    cluster.view(pod, log=log)
    assert cluster.kubectl(kubectl, "logs", pod).stdout == b"one\ntwo\nthree\n"
    assert cluster.kubectl(kubectl, "logs", pod, "--tail=2").stdout == b"two\nthree\n"
    assert cluster.kubectl(kubectl, "logs", pod, "--limit-bytes=5").stdout == b"one\nt"
    refused = cluster.kubectl(kubectl, "logs", pod, "--timestamps")
    assert refused.returncode == 1 and b"timestamps is not supported" in refused.stderr

    env = {**cluster.env, "KUBECONFIG": str(cluster.api.kubeconfig_path)}
    follower = subprocess.Popen([str(kubectl), "logs", "-f", pod], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        assert follower.stdout.read(len(b"one\ntwo\nthree\n")) == b"one\ntwo\nthree\n"
        with log.open("ab") as f:
            f.write(b"four\n")
        assert follower.stdout.read(5) == b"four\n"
        assert follower.poll() is None  # still following
        cluster.view(pod, log=log, running=False)  # the container exits: the stream ends
        out, err = follower.communicate(timeout=10)
        assert follower.returncode == 0, err
        assert out == b""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_exec_and_logs_are_refused_as_kube_apiserver_refuses_them(cluster: Cluster) -> None:
    kubectl = KUBECTLS[0]
    missing = cluster.kubectl(kubectl, "exec", "no-such-pod", "--", "true")
    assert missing.returncode == 1 and b'pods "no-such-pod" not found' in missing.stderr

    unscheduled = _pod(cluster, node=None, phase="Pending")
    refused = cluster.kubectl(kubectl, "exec", unscheduled, "--", "true")
    assert refused.returncode == 1 and b"waiting to start: ContainerCreating" in refused.stderr
    scheduled_nowhere = _pod(cluster, node=None)
    refused = cluster.kubectl(kubectl, "logs", scheduled_nowhere)
    assert refused.returncode == 1 and f"pod {scheduled_nowhere} does not have a host assigned".encode() in (
        refused.stderr)

    completed = _pod(cluster, phase="Succeeded")
    with admin(cluster.api) as http:
        answer = http.get(f"/api/v1/namespaces/default/pods/{completed}/exec", params={"command": "true",
                                                                                        "stdout": "true"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "cannot exec into a container in a completed pod; current phase is Succeeded"

    running = _pod(cluster)
    cluster.view(running)
    spdy = subprocess.run([str(kubectl), "exec", running, "--", "true"], capture_output=True, timeout=30, env={
        **cluster.env, "KUBECONFIG": str(cluster.api.kubeconfig_path), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert spdy.returncode == 1 and b"streams exec over WebSocket only" in spdy.stderr

    pair = _pod(cluster, containers=("a", "b"))
    with admin(cluster.api) as http:
        answer = http.get(f"/api/v1/namespaces/default/pods/{pair}/log")
    assert answer.status_code == 400
    assert answer.json()["message"] == f"a container name must be specified for pod {pair}, choose one of: [a b]"


def _service_account(cluster: Cluster, name: str, rules: list[dict[str, object]]) -> Path:
    with admin(cluster.api) as http:
        http.post("/api/v1/namespaces/default/serviceaccounts", json={"metadata": {"name": name}}).raise_for_status()
        rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
        http.post(f"{rbac}/roles", json={"metadata": {"name": name}, "rules": rules}).raise_for_status()
        http.post(f"{rbac}/rolebindings", json={
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]}).raise_for_status()
    return cluster.api.kubeconfig_for(cluster.home / f"{name}.kubeconfig", "default", name)


def test_exec_needs_create_on_pods_exec_and_logs_get_on_pods_log(cluster: Cluster) -> None:
    kubectl = KUBECTLS[0]
    pod = _pod(cluster)
    log = cluster.home / f"{pod}.log"
    log.write_bytes(b"hello\n")
    cluster.view(pod, log=log)
    read_pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    viewer = _service_account(cluster, "viewer", [
        read_pods, {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}])  # get alone does not let one exec
    refused = cluster.kubectl(kubectl, "exec", pod, "--", "true", kubeconfig=viewer)
    assert refused.returncode == 1
    assert (b'User "system:serviceaccount:default:viewer" cannot create resource "pods/exec" in API group ""'
            in refused.stderr)
    assert cluster.kubectl(kubectl, "logs", pod, kubeconfig=viewer).stdout == b"hello\n"

    operator = _service_account(cluster, "operator", [
        read_pods, {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}])
    allowed = cluster.kubectl(kubectl, "exec", pod, "--", "echo", "in")
    assert allowed.returncode == 0 and allowed.stdout == b"in\n"
    allowed = cluster.kubectl(kubectl, "exec", pod, "--", "echo", "in", kubeconfig=operator)
    assert allowed.returncode == 0 and allowed.stdout == b"in\n", allowed.stderr
    refused = cluster.kubectl(kubectl, "logs", pod, kubeconfig=operator)
    assert refused.returncode == 1 and b'cannot get resource "pods/log"' in refused.stderr


def test_the_kubelet_answers_the_api_server_only(cluster: Cluster) -> None:
    import httpx2 as httpx  # the kubelet's endpoint, reached directly with and without the token

    with admin(cluster.api) as http:
        node = http.get("/api/v1/nodes/worker-x").json()
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    pod = _pod(cluster)
    log = cluster.home / f"{pod}.log"
    log.write_bytes(b"secret\n")
    cluster.view(pod, log=log)
    url = f"http://127.0.0.1:{port}/containerLogs/default/{pod}/main"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {cluster.api.admin_token}"}).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {cluster.api.kubelet_token}"})
    assert answer.status_code == 200 and answer.content == b"secret\n"


def test_a_pods_containers_are_told_apart(cluster: Cluster, tmp_path: Path) -> None:
    kubectl = KUBECTLS[0]
    pod = _pod(cluster, containers=("a", "b"))
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(f"log of {name}\n".encode())
        cluster.view(pod, log=tmp_path / name, container=name)
    assert cluster.kubectl(kubectl, "logs", pod, "-c", "b").stdout == b"log of b\n"
    refused = cluster.kubectl(kubectl, "exec", pod, "-c", "c", "--", "true")
    assert refused.returncode == 1 and b"container c is not valid for pod" in refused.stderr


def test_a_kubelet_going_away_mid_command_fails_kubectl(cluster: Cluster) -> None:
    kubectl = KUBECTLS[0]
    marker = f"{secrets.randbelow(10**6) + 10**6}.75"
    pods = Containers({("default", "cut", "main"): ContainerView(None, None, {"PATH": os.environ["PATH"]})})
    with running_kubelet(cluster.api, pods, node="worker-cut") as kubelet:
        add_pod(cluster.api, "cut", node="worker-cut")
        env = {**cluster.env, "KUBECONFIG": str(cluster.api.kubeconfig_path)}
        process = subprocess.Popen([str(kubectl), "exec", "cut", "--", "sleep", marker], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while not sleeping(marker) and time.monotonic() < deadline:
                time.sleep(0.02)
            kubelet.stop()
            _, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 1, err  # not 0: kubectl takes an end without a status for success
    assert b"the kubelet's stream ended abnormally" in err
