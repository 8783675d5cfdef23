"""The small kubelet as a process beside the in-thread API server, on a node network namespace: start it, wait
for what it reports, stop it with SIGTERM and check it left nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from vdpa_operator.sim.apiserver.kubeconfigs import raw_access

VDPACTL = str(Path(sys.executable).parent / "vdpactl")
T = TypeVar("T")


class Api:
    """Plain HTTP to the API server with the kubeconfig's admin token."""

    def __init__(self, kubeconfig: Path) -> None:
        access = raw_access(kubeconfig)
        self.client = httpx2.Client(base_url=access.url, headers=access.headers, verify=access.verify, timeout=10)

    def get(self, path: str) -> Any:
        answer = self.client.get(path)
        return None if answer.status_code == 404 else answer.raise_for_status().json()

    def create(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, json=body).raise_for_status().json()

    def delete(self, path: str) -> None:
        self.client.delete(path).raise_for_status()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"not within {timeout:g}s: {what}\n{tail}")


@contextmanager
def kubelet(kubeconfig: Path, root: Path, netns: str, *extra: str, node: str = "worker-0") -> Iterator[Path]:
    """`vdpactl sim kubelet` until the block ends; yields its log file. On exit: SIGTERM, and it must stop."""
    log = root / "kubelet.log"
    root.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen([VDPACTL, "sim", "kubelet", "--node-name", node, "--kubeconfig",
                                    str(kubeconfig), "--root", str(root), "--node-netns", netns, *extra],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"the kubelet did not stop on SIGTERM\n{log.read_text()[-4000:]}") from None
        assert code == 0, log.read_text()[-4000:]


def pod(name: str, command: list[str], *, namespace: str = "vdpa", restart: str = "Always",
        annotations: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "networkstatic/iperf3", "command": command}
    if limits:
        container["resources"] = {"limits": limits, "requests": limits}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"containers": [container], "restartPolicy": restart, "terminationGracePeriodSeconds": 2}}


@contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A node process (device plugin, CNI server) beside the kubelet, its output in `log`; SIGTERM at the end."""
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
