"""What the watch-memory test and `bench/apiserver_watch.py` share: the API server as its own process (so its peak
RSS is its own), and watch clients that never read."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vdpa_operator.sim.apiserver.kubeconfigs import raw_access

BIN = Path(sys.executable).parent
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@dataclass(frozen=True)
class ApiServer:
    pid: int
    url: str
    headers: dict[str, str]
    """The kubeconfig's credentials, as request headers."""
    verify: ssl.SSLContext | bool
    """The TLS context that trusts the server (it speaks HTTPS, as kubectl needs to send a token)."""

    def peak_rss(self) -> int:
        """The server's peak resident memory so far (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmHWM for {self.pid}")

    def slow_watch(self, path: str = CONFIGMAPS) -> socket.socket:
        """A watch whose client reads nothing, with a small receive buffer so the server's writes back up."""
        host, port = self.url.split("//")[1].rsplit(":", 1)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        if isinstance(self.verify, ssl.SSLContext):
            sock = self.verify.wrap_socket(sock, server_hostname=host)
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        sock.sendall(f"GET {path}?watch=1 HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        return sock


@contextmanager
def apiserver(directory: Path) -> Iterator[ApiServer]:
    """`vdpactl sim apiserver` on a free port, its kubeconfig in `directory`; stopped however the caller ends."""
    kubeconfig = directory / "kubeconfig"
    proc = subprocess.Popen([str(BIN / "vdpactl"), "sim", "apiserver", "--port", "0", "--kubeconfig",
                             str(kubeconfig)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (kubeconfig.exists() and kubeconfig.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        access = raw_access(kubeconfig)
        yield ApiServer(proc.pid, access.url, access.headers, access.verify)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server ended this stream: its end, or a reset, arrives before `deadline` (monotonic)."""
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
