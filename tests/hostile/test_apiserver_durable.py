"""`vdpactl sim apiserver --data-dir` against a power cut and a damaged directory: every create it acknowledged
survives a SIGKILL, a resourceVersion once handed out is never handed out again, and a file it cannot read is
one line naming the file and what to do (exit 2), never a traceback."""

from __future__ import annotations

import itertools
import json
import os
import re
import resource
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from vdpa_operator.sim.apiserver.kubeconfigs import raw_access

RUN_SIM = "from vdpa_operator.cli.sim import sim; sim(prog_name='vdpactl sim')"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
CLIENTS = 6
KILL_AFTER = 400
"""Acknowledged creates before the SIGKILL (the clients keep creating meanwhile)."""


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    verify: ssl.SSLContext | bool = True

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, verify=self.verify,  # type: ignore[arg-type]
                            **kwargs)


def command(tmp_path: Path, data: Path) -> list[str]:
    return [sys.executable, "-c", RUN_SIM, "apiserver", "--port", "0", "--data-dir", str(data),
            "--kubeconfig", str(tmp_path / "kubeconfig")]


@contextmanager
def server(tmp_path: Path, data: Path) -> Iterator[Server]:
    """The API server in its own process, until SIGTERM (or the test's SIGKILL) ends it."""
    process = subprocess.Popen(command(tmp_path, data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None and process.stderr is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        found = re.search(r"listening on (\S+) ", line)
        assert found is not None, f"the server did not start: {line or process.stderr.read()}"
        access = raw_access(tmp_path / "kubeconfig")
        yield Server(process, found.group(1), access.headers, access.verify)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        process.stdout.close()
        process.stderr.close()


class Load:
    """CLIENTS threads creating ConfigMaps as fast as the server answers, and a watch: what was acknowledged
    (name → resourceVersion) and every resourceVersion the watch was shown."""

    def __init__(self, api: Server) -> None:
        self.api = api
        self.acknowledged: dict[str, int] = {}
        self.watched: list[int] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._create, args=(k,)) for k in range(CLIENTS)]
        self._threads.append(threading.Thread(target=self._watch))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join(30)

    def _create(self, client: int) -> None:
        with self.api.client(timeout=10) as http:
            for i in itertools.count():
                name = f"c{client}-{i:06d}"
                try:
                    answer = http.post(CONFIGMAPS, json={"metadata": {"name": name}, "data": {"i": str(i)}})
                except httpx.TransportError:
                    return  # the server is gone: this create was never acknowledged
                if answer.status_code != 201:
                    self.failures.append(f"{name}: {answer.status_code} {answer.text}")
                    return
                with self._lock:
                    self.acknowledged[name] = int(answer.json()["metadata"]["resourceVersion"])

    def _watch(self) -> None:
        params = {"watch": "true", "resourceVersion": "0", "timeoutSeconds": "120"}
        try:
            with self.api.client(timeout=None) as http, http.stream("GET", CONFIGMAPS, params=params) as answer:
                for line in answer.iter_lines():
                    self.watched.append(int(json.loads(line)["object"]["metadata"]["resourceVersion"]))
        except httpx.TransportError:
            return

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)


def test_every_acknowledged_create_survives_sigkill_and_versions_never_go_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with server(tmp_path, data) as api, Load(api) as load:
        deadline = time.monotonic() + 60
        while load.count() < KILL_AFTER and not load.failures and time.monotonic() < deadline:
            time.sleep(0.01)
        api.process.kill()  # SIGKILL, mid-stream: the clients are still creating
        api.process.wait(10)
    assert not load.failures, load.failures[:3]
    assert len(load.acknowledged) >= KILL_AFTER, "the server acknowledged too few creates in 60 s"
    handed_out = max([*load.acknowledged.values(), *load.watched])

    with server(tmp_path, data) as api, api.client(timeout=10) as http:
        stored = {item["metadata"]["name"]: int(item["metadata"]["resourceVersion"])
                  for item in http.get(CONFIGMAPS).json()["items"]}
        lost = sorted(set(load.acknowledged) - set(stored))
        assert not lost, f"{len(lost)} of {len(load.acknowledged)} acknowledged creates lost, e.g. {lost[:5]}"
        changed = {n: (rv, stored[n]) for n, rv in load.acknowledged.items() if stored[n] != rv}
        assert not changed, f"stored with another resourceVersion (acknowledged, stored): {list(changed.items())[:5]}"

        after = http.post(CONFIGMAPS, json={"metadata": {"name": "after-the-kill"}})
        assert after.status_code == 201, after.text
        assert int(after.json()["metadata"]["resourceVersion"]) > handed_out


def test_a_write_the_disk_refuses_is_a_500_never_an_acknowledgement(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with server(tmp_path, data) as api, api.client(timeout=10) as http:
        acknowledged = [http.post(CONFIGMAPS, json={"metadata": {"name": f"before-{i}"}}).json() for i in range(20)]
        # The disk is full as far as the server can tell: its files may not grow (Python ignores SIGXFSZ, so a
        # write past the limit fails with EFBIG).
        wal = data / "state.db-wal"
        resource.prlimit(api.process.pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, resource.RLIM_INFINITY))
        refused = http.post(CONFIGMAPS, json={"metadata": {"name": "refused"}, "data": {"k": "v" * 20_000}})
        assert refused.status_code == 500, refused.text
        assert refused.json()["reason"] == "InternalError"
        assert f"{data / 'state.db'}: the change was not saved" in refused.json()["message"]
        assert http.get(f"{CONFIGMAPS}/before-0").status_code == 200  # reads go on

        resource.prlimit(api.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        after = http.post(CONFIGMAPS, json={"metadata": {"name": "after"}})
        assert after.status_code == 201, after.text
        api.process.kill()
        api.process.wait(10)

    with server(tmp_path, data) as api, api.client(timeout=10) as http:
        for obj in [*acknowledged, after.json()]:
            assert http.get(f"{CONFIGMAPS}/{obj['metadata']['name']}").json() == obj
        # The refused change stayed queued and went to disk with the next commit: its outcome was unknown.
        assert http.get(f"{CONFIGMAPS}/refused").status_code == 200


def state_db(tmp_path: Path) -> Path:
    """A real database with objects in it, written by a server that was then stopped cleanly."""
    data = tmp_path / "data"
    with server(tmp_path, data) as api, api.client(timeout=10) as http:
        for i in range(300):
            assert http.post(CONFIGMAPS, json={"metadata": {"name": f"cm-{i}"}, "data": {"k": "v" * 200}}
                             ).status_code == 201
    return data / "state.db"


def garbage_db(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "state.db"
    path.parent.mkdir()
    path.write_bytes(b"not a database, just text\n" * 200)
    return path


def truncated_db(tmp_path: Path) -> Path:
    path = state_db(tmp_path)
    os.truncate(path, path.stat().st_size // 2)
    return path


def empty_db(tmp_path: Path) -> Path:
    path = state_db(tmp_path)
    os.truncate(path, 0)
    return path


def truncated_json(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "state.json"
    path.parent.mkdir()
    state = {"format": 1, "resourceVersion": 7, "resources": {"configmaps": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default",
                                                              "resourceVersion": "7"}}]}}
    text = json.dumps(state, indent=1)
    path.write_text(text[:len(text) // 2])
    return path


def foreign_json(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "state.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": 99, "resources": {}}))
    return path


@pytest.mark.parametrize(("make", "why"), [
    (garbage_db, "not a database"),
    (truncated_db, "damaged|malformed"),
    (empty_db, "empty or not an API server database"),
    (truncated_json, r"line \d+ column \d+"),
    (foreign_json, "not a state file of format 1"),
])
def test_a_damaged_data_dir_file_is_one_line_naming_it_and_what_to_do(tmp_path: Path, make: object,
                                                                      why: str) -> None:
    assert callable(make)
    path: Path = make(tmp_path)
    before = path.read_bytes()
    try:
        run = subprocess.run(command(tmp_path, path.parent), capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server started on a damaged {path.name}")
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith(f"error: {path}: "), run.stderr
    assert re.search(why, run.stderr) and f"move it aside (mv {path} {path}.bad) to start empty" in run.stderr
    assert path.read_bytes() == before, "the damaged file was changed"


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data, second = tmp_path / "data", tmp_path / "second"
    second.mkdir()
    with server(tmp_path, data):
        try:
            run = subprocess.run(command(second, data), capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("a second server started on the same data directory")
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == f"error: {data}: in use by another API server; stop it, or give this one " \
                                 "another --data-dir"


def test_a_format_1_state_file_is_migrated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    kept = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
            "metadata": {"name": "kept", "namespace": "default", "uid": "u-1", "resourceVersion": "41",
                         "creationTimestamp": "2026-01-01T00:00:00Z"}}
    (data / "state.json").write_text(json.dumps({"format": 1, "resourceVersion": 41,
                                                 "resources": {"configmaps": [kept]}}))
    with server(tmp_path, data) as api, api.client(timeout=10) as http:
        assert http.get(f"{CONFIGMAPS}/kept").json() == kept
        newer = http.post(CONFIGMAPS, json={"metadata": {"name": "newer"}}).json()
        assert int(newer["metadata"]["resourceVersion"]) > 41
    assert not (data / "state.json").exists() and (data / "state.json.format1").exists()
    with server(tmp_path, data) as api, api.client(timeout=10) as http:
        assert http.get(f"{CONFIGMAPS}/newer").json() == newer
