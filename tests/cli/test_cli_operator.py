"""`vdpactl operator` as a user runs it: flag errors exit 2, and a real run stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from vdpa_operator.cli import main
from vdpa_operator.sim.apiserver import serve_in_thread


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--health-address", "nowhere"], "--health-address 'nowhere': want HOST:PORT"),
        (["--webhook-address", "1.2.3.4:99999"], "--webhook-address '1.2.3.4:99999': want HOST:PORT"),
        (["--stale-node-state-cleanup-delay-minutes", "soon"], "want whole minutes >= 0"),
        (["--resource-prefix", ""], "RESOURCE_PREFIX is empty"),
        (["--kubeconfig", "/nonexistent/kubeconfig", "--no-webhook"], "no usable Kubernetes configuration"),
    ],
)
def test_bad_flags_exit_2_with_the_reason(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["operator", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_operator_serves_probes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    with serve_in_thread(tmp_path / "kubeconfig") as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdpa_operator.cli", "operator", "--kubeconfig", str(server.kubeconfig_path),
             "--no-webhook", "--health-address", f"127.0.0.1:{port}", "--namespace", "default"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                        assert response.read() == b"ok"
                        break
                except OSError:
                    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                    assert time.monotonic() < deadline, "the operator never became ready"
                    time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
