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
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def client(kubeconfig: Path, config: dict[str, Any] | None = None) -> httpx.Client:
    """An HTTP client as the kubeconfig's user (the admin token), trusting the CA the kubeconfig names;
    `config`: a kubeconfig read earlier (its token and CA) for the server the file now names."""
    config = config or json.loads(kubeconfig.read_text())
    cluster = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    return httpx.Client(base_url=cluster["server"], timeout=5, verify=ssl.create_default_context(cadata=ca),
                        headers={"Authorization": "Bearer " + config["users"][0]["user"]["token"]})


def test_runs_until_sigterm_and_writes_a_kubeconfig_for_itself(tmp_path: Path) -> None:
    with running(tmp_path) as (line, kubeconfig):
        assert f"export KUBECONFIG={kubeconfig}; kubectl get sriovnetworknodepolicies -A" in line
        url = re.search(r"listening on (https://127\.0\.0\.1:\d+) ", line)
        assert url is not None, line
        config = json.loads(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url.group(1)
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600, "it holds the admin token"
        with client(kubeconfig) as http:
            assert http.get("/version").json()["major"] == "1"
            created = http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}})
            assert created.status_code == 201
        with httpx.Client(base_url=url.group(1), verify=False, timeout=5) as anonymous:
            assert anonymous.get("/version").status_code == 401


def test_plain_http_on_request_still_wants_the_token(tmp_path: Path) -> None:
    with running(tmp_path, "--no-tls") as (line, kubeconfig):
        cluster = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]
        assert cluster["server"].startswith("http://127.0.0.1:") and cluster["server"] in line
        assert "certificate-authority-data" not in cluster
        token = json.loads(kubeconfig.read_text())["users"][0]["user"]["token"]
        with httpx.Client(base_url=cluster["server"], timeout=5) as http:
            assert http.get("/api/v1/namespaces/default").status_code == 401
            assert http.get("/api/v1/namespaces/default", headers={"Authorization": f"Bearer {token}"}
                            ).json()["metadata"]["name"] == "default"


def test_a_data_dir_keeps_objects_and_credentials_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "state"
    with running(tmp_path, "--data-dir", str(data)) as (line, kubeconfig):
        assert str(data) in line
        first = json.loads(kubeconfig.read_text())
        with client(kubeconfig) as http:
            assert http.post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": "kept"}, "data": {"k": "v"}}).status_code == 201
    began = time.monotonic()
    with running(tmp_path, "--data-dir", str(data)) as (line, kubeconfig), client(kubeconfig, first) as http:
        # The first run's token and CA still work: clients holding the old kubeconfig carry on.
        assert http.get("/api/v1/namespaces/default/configmaps/kept").json()["data"] == {"k": "v"}
    assert time.monotonic() - began < 10
