"""The relay between namespaces, as root, with a real namespace and real sockets: the machine's server is
reachable at the same address inside a node namespace (how hostNetwork pods reach the API server), and a server
inside a namespace at an address of the machine (how the API server would reach a pod's webhook)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a network namespace")

ECHO = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"echo:" + c.recv(100)); c.close()
"""
CLIENT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
c.sendall(b"hello")
print(c.recv(100).decode())
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"vfwd-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def _start(argv: list[str], started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started.append(process)
    return process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relay(started: list[subprocess.Popen[str]], *args: str) -> None:
    process = _start([sys.executable, "-m", "vdpa_operator.sim.cluster.forwarder", *args], started)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("relaying"), line + (process.stderr.read() if process.stderr else "")


def _ask(port: int, netns: str | None = None) -> str:
    argv = [sys.executable, "-c", CLIENT, str(port)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.kill()
        process.wait()


def test_the_machines_server_at_the_same_address_inside_a_namespace(netns: str,
                                                                    started: list[subprocess.Popen[str]]) -> None:
    server = _start([sys.executable, "-c", ECHO], started)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    with pytest.raises(subprocess.CalledProcessError):
        _ask(port, netns)  # not there before the relay
    _relay(started, "--listen", f"{netns}=127.0.0.1:{port}", "--connect", f"127.0.0.1:{port}")
    assert _ask(port, netns) == "echo:hello"
    assert _ask(port, netns) == "echo:hello", "each connection is relayed"


def test_a_server_inside_a_namespace_at_an_address_of_the_machine(netns: str,
                                                                 started: list[subprocess.Popen[str]]) -> None:
    server = _start(["ip", "netns", "exec", netns, sys.executable, "-c", ECHO], started)
    assert server.stdout is not None
    inner = int(server.stdout.readline())
    outer = _free_port()
    _relay(started, "--listen", f"127.0.0.1:{outer}", "--connect", f"/var/run/netns/{netns}=127.0.0.1:{inner}")
    assert _ask(outer) == "echo:hello"
