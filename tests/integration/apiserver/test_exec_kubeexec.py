"""`kubeexec.exec_in_pod`, what `vdpactl verify` runs its checks with, against the embedded API server and a real
streaming server over a real network namespace: output, exit codes, protocol fallback, and each refusal said."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.config.kubeconfig import KubeConfig

from integration.apiserver.streaming_support import (
    LINK,
    Containers,
    KubeletInThread,
    add_node,
    add_pod,
    network_namespace,
    running_kubelet,
    sleeping,
)
from vdpa_operator import remotecommand as rc
from vdpa_operator.kubeexec import ExecError, ExecResult, exec_in_pod, exec_in_pod_sync
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.sim.kubelet.streaming import ContainerView

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes a network namespace: needs root")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One API server, two kubelets over one network namespace: `worker-x` speaks v5 and v4, `worker-old` v4 only
    (a kubelet from before v5); pod `p` runs on the first, `old` on the second."""
    handle = serve_in_thread(tmp_path_factory.mktemp("kubeexec") / "kubeconfig")
    pods = Containers()
    try:
        with network_namespace() as netns, running_kubelet(handle, pods), \
                running_kubelet(handle, pods, (rc.V4,), node="worker-old"):
            for pod in ("p", "old"):
                pods.views[("default", pod, "main")] = ContainerView(netns, None, {"PATH": os.environ["PATH"]})
            add_pod(handle, "p")
            add_pod(handle, "old", node="worker-old")
            yield handle
    finally:
        handle.stop()


def test_output_and_exit_code_come_back_apart(api: ServerHandle) -> None:
    result = exec_in_pod_sync(api.kubeconfig_path, "default", "p", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result == ExecResult(b"out\n", b"err\n", 3)
    links = exec_in_pod_sync(str(api.kubeconfig_path), "default", "p", ["ip", "-o", "link"], container="main")
    assert links.exit_code == 0 and f": {LINK}@".encode() in links.stdout


def test_a_loaded_kubeconfig_and_an_older_protocol_do_too(api: ServerHandle) -> None:
    config = KubeConfig.from_file(api.kubeconfig_path)
    assert exec_in_pod_sync(config, "default", "old", ["echo", "v4"]) == ExecResult(b"v4\n", b"", 0)
    with pytest.raises(ExecError, match="error dialing backend"):
        asyncio.run(exec_in_pod(config.get(), "default", "old", ["true"], protocols=(rc.V5,)))


def test_refusals_name_the_pod_and_say_why(api: ServerHandle) -> None:
    with pytest.raises(ExecError, match=r'pod default/gone refused: 404 NotFound: pods "gone" not found'):
        exec_in_pod_sync(api.kubeconfig_path, "default", "gone", ["true"])
    with pytest.raises(ExecError, match=r"400 BadRequest: container other is not valid for pod p"):
        exec_in_pod_sync(api.kubeconfig_path, "default", "p", ["true"], container="other")
    with pytest.raises(ExecError, match=r'exec: "nonexistent-tool": executable file not found in \$PATH'):
        exec_in_pod_sync(api.kubeconfig_path, "default", "p", ["nonexistent-tool"])

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    add_node(api, port, "worker-down")
    add_pod(api, "stranded", node="worker-down")
    with pytest.raises(ExecError, match="error dialing backend"):
        exec_in_pod_sync(api.kubeconfig_path, "default", "stranded", ["true"])


async def _seen_then_given_up(api: ServerHandle, marker: str) -> bool:
    """Start `sleep <marker>` with a 1 s timeout; whether it was seen running before the timeout struck."""
    attempt = asyncio.create_task(exec_in_pod(api.kubeconfig_path, "default", "p", ["sleep", marker], timeout=1.0))
    seen = False
    while not attempt.done() and not seen:
        seen = sleeping(marker)
        await asyncio.sleep(0.02)
    with pytest.raises(ExecError, match=r"did not finish within 1 s"):
        await attempt
    return seen


def test_a_command_past_its_timeout_is_given_up_and_killed(api: ServerHandle) -> None:
    marker = f"{secrets.randbelow(10**6) + 10**6}.5"  # an argument no other process has
    assert asyncio.run(_seen_then_given_up(api, marker))
    deadline = time.monotonic() + 5
    while sleeping(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sleeping(marker)  # the client left, so the kubelet killed the command


async def _cut_off(api: ServerHandle, kubelet: KubeletInThread, marker: str) -> None:
    attempt = asyncio.create_task(exec_in_pod(api.kubeconfig_path, "default", "cut", ["sleep", marker], timeout=20))
    deadline = time.monotonic() + 10
    while not sleeping(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert sleeping(marker)
    await asyncio.get_running_loop().run_in_executor(None, kubelet.stop)
    with pytest.raises(ExecError, match=r"the kubelet's stream ended abnormally \(WebSocket close code 1001\)"):
        await attempt


def test_a_kubelet_going_away_mid_command_is_a_failure_not_a_success(api: ServerHandle, tmp_path: Path) -> None:
    pods = Containers({("default", "cut", "main"): ContainerView(None, None, {"PATH": os.environ["PATH"]})})
    marker = f"{secrets.randbelow(10**6) + 10**6}.25"
    with running_kubelet(api, pods, node="worker-cut") as kubelet:
        add_pod(api, "cut", node="worker-cut")
        asyncio.run(_cut_off(api, kubelet, marker))
    assert not sleeping(marker)  # the kubelet's shutdown took the command with it
