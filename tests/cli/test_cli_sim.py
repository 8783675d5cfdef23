"""`vdpactl sim apiserver`: flags checked before anything starts, then a real run in a subprocess (plain and TLS,
in memory and with a data directory), stopped by SIGTERM to its PID."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from vdpa_operator.cli.sim import sim

RUN_SIM = "import sys; from vdpa_operator.cli.sim import sim; sim(prog_name='vdpactl sim')"


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "70000"], "Invalid value for '--port'"),
    (["--webhook-service", "no-address"], "expected NAMESPACE/NAME=HOST:PORT"),
    (["--kubeconfig", "/nonexistent/dir/kubeconfig"], "/nonexistent/dir is not a directory"),
    (["--tls", "--no-such-flag"], "No such option '--no-such-flag'"),
])
def test_bad_flags_exit_2_saying_what_is_wrong(args: list[str], message: str) -> None:
    result = CliRunner().invoke(sim, ["apiserver", *args])
    assert result.exit_code == 2
    assert message in result.output


@contextmanager
def running(tmp_path: Path, *args: str) -> Iterator[tuple[str, Path]]:
    """The server in a subprocess: (the line it printed, the kubeconfig path). Stopped with SIGTERM."""
    kubeconfig = tmp_path / "sim.kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_SIM, "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None and process.stderr is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the server printed nothing within 20 s"
        line = process.stdout.readline()
        assert line, process.stderr.read()
        yield line, kubeconfig
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(10) == 0, process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
            process.stdout.close()
            process.stderr.close()


def test_runs_until_sigterm_and_writes_a_kubeconfig_for_itself(tmp_path: Path) -> None:
    with running(tmp_path) as (line, kubeconfig):
        assert f"export KUBECONFIG={kubeconfig}; kubectl get sriovnetworknodepolicies -A" in line
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+) ", line)
        assert url is not None, line
        config = json.loads(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url.group(1)
        with httpx.Client(base_url=url.group(1), timeout=5) as http:
            assert http.get("/version").json()["major"] == "1"
            created = http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}})
            assert created.status_code == 201


def test_tls_puts_its_ca_in_the_kubeconfig(tmp_path: Path) -> None:
    with running(tmp_path, "--tls") as (line, kubeconfig):
        cluster = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]
        assert cluster["server"].startswith("https://127.0.0.1:") and cluster["server"] in line
        ca_file = tmp_path / "ca.crt"
        ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        trusting = ssl.create_default_context(cafile=str(ca_file))
        with httpx.Client(base_url=cluster["server"], verify=trusting, timeout=5) as http:
            assert http.get("/api/v1/namespaces/default").json()["metadata"]["name"] == "default"
        with httpx.Client(base_url=cluster["server"], timeout=5) as untrusting, pytest.raises(httpx.ConnectError):
            untrusting.get("/version")


def test_a_data_dir_keeps_objects_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "state"
    with running(tmp_path, "--data-dir", str(data)) as (line, _):
        url = re.search(r"listening on (\S+) ", line)
        assert url is not None and str(data) in line
        with httpx.Client(base_url=url.group(1), timeout=5) as http:
            assert http.post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": "kept"}, "data": {"k": "v"}}).status_code == 201
    began = time.monotonic()
    with running(tmp_path, "--data-dir", str(data)) as (line, _):
        url = re.search(r"listening on (\S+) ", line)
        assert url is not None
        with httpx.Client(base_url=url.group(1), timeout=5) as http:
            assert http.get("/api/v1/namespaces/default/configmaps/kept").json()["data"] == {"k": "v"}
    assert time.monotonic() - began < 10
