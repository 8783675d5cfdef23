"""ConfigMap creates per second through `vdpactl sim apiserver`, with `--data-dir` (every create durable before
it is acknowledged) and in memory only (the peer: the same server and clients with nothing written to disk).

The server runs in its own process; `--clients` concurrent keep-alive clients in this process POST ConfigMaps
(about 300 bytes each) until `--creates` are acknowledged. Only the creates are timed; the server's CPU time
per create is printed beside each figure.

Before (commit 4f871b5: a write-behind JSON snapshot every 0.2 s, so a SIGKILL lost the creates of the last
0.2 s and the next server re-used their resourceVersions), measured with this script on the 2-core development
VM, 8 clients, 10,000 creates, median of 3 at a quiet moment: BEFORE_CREATES_PER_S with `--data-dir`,
BEFORE_PEER_CREATES_PER_S in memory. The VM is shared, so figures move by 2x from run to run: run alternately
with 4f871b5 under the same load, the write-behind did 1,460-1,960/s and the durable store 1,170-1,510/s
(server CPU about 250 against 340 µs a create). Each create now waits for an fsync (shared by the creates that
came meanwhile), so the figure is bound by the disk's sync latency more than by the server.

Goal: GOAL_CREATES_PER_S durable creates/s with 8 clients, so the NodeStates of a 1,000-node cluster are written
within a second.

`--options` measures instead what chose the store (sim/apiserver/persist.py): commits per second of SQLite in
WAL mode with synchronous=FULL against an append-only log with fdatasync, one write a commit and 8 a commit.
Both run in a temporary directory under the current one, not in /tmp, which may be a tmpfs where a sync is
free.

    .venv/bin/python bench/apiserver_durable.py [--clients N] [--creates N] [--options]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import stop, verdict

from vdpa_operator.sim.apiserver.kubeconfigs import RawAccess, raw_access

BEFORE_CREATES_PER_S = 4580
BEFORE_PEER_CREATES_PER_S = 6020
GOAL_CREATES_PER_S = 1000
RUN_SIM = "from vdpa_operator.cli.sim import sim; sim(prog_name='vdpactl sim')"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def start_server(workdir: Path, data_dir: Path | None) -> tuple[subprocess.Popen[bytes], RawAccess]:
    """`vdpactl sim apiserver` on a free port: the process, and how its kubeconfig says to reach it."""
    kubeconfig = workdir / "kubeconfig"
    args = [sys.executable, "-c", RUN_SIM, "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    found = re.search(r"listening on (\S+) ", line)
    if found is None:
        stop(proc, "the API server")
        sys.exit(f"the API server did not start: {line or proc.stderr.read().decode()}")
    return proc, raw_access(kubeconfig)


async def create_all(access: RawAccess, clients: int, creates: int) -> float:
    """Seconds for `clients` concurrent clients to have `creates` ConfigMaps acknowledged (201)."""
    names = iter(range(creates))
    async with aiohttp.ClientSession(access.url, headers=access.headers,
                                     connector=aiohttp.TCPConnector(limit=clients, ssl=access.verify)) as session:
        async def client() -> None:
            for i in names:
                body = {"metadata": {"name": f"cm-{i:06d}", "labels": {"bench": "durable"}},
                        "data": {"key": "value " * 30}}
                async with session.post(CONFIGMAPS, json=body) as answer:
                    if answer.status != 201:
                        raise RuntimeError(f"create cm-{i:06d}: {answer.status} {await answer.text()}")
                    await answer.read()

        async with session.get("/version") as warm:  # the first connection, outside the timing
            warm.raise_for_status()
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - began


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(workdir: Path, data_dir: Path | None, clients: int, creates: int) -> tuple[float, float]:
    """Creates per second, and the server's CPU microseconds per create."""
    proc, access = start_server(workdir, data_dir)
    try:
        cpu = cpu_seconds(proc.pid)
        seconds = asyncio.run(create_all(access, clients, creates))
        cpu = cpu_seconds(proc.pid) - cpu
    finally:
        stop(proc, "the API server")
    return creates / seconds, cpu / creates * 1e6


def sqlite_commits(directory: Path, bodies: list[bytes], batch: int) -> None:
    db = sqlite3.connect(directory / "options.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE objects (name TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID")
    for start in range(0, len(bodies), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?)",
                       [(f"cm-{i}", bodies[i].decode()) for i in range(start, start + batch)])
        db.execute("COMMIT")
    db.close()


def log_commits(directory: Path, bodies: list[bytes], batch: int) -> None:
    fd = os.open(directory / "options.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for start in range(0, len(bodies), batch):
            os.write(fd, b"".join(b + b"\n" for b in bodies[start:start + batch]))
            os.fdatasync(fd)
    finally:
        os.close(fd)


def store_options(workdir: Path, writes: int = 800) -> None:
    """The measurement behind persist.py's choice of store: durable writes per second, no HTTP."""
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "cm-000000", "namespace": "default", "uid": "6f1f0d2e-3b1c-4d7e-9f59-0d6c8a1b2c3d",
        "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}, "data": {"key": "value " * 30}})
    bodies = [body.encode()] * writes
    print(f"durable writes/s of the store options, {writes} ConfigMaps (no goal: what chose persist.py's store):")
    for batch in (1, 8):
        for name, commits in (("SQLite WAL, synchronous=FULL", sqlite_commits), ("log + fdatasync", log_commits)):
            directory = workdir / f"{name.split()[0]}-{batch}"
            directory.mkdir()
            began = time.perf_counter()
            commits(directory, bodies, batch)
            print(f"  {name:29s} {batch} a commit: {writes / (time.perf_counter() - began):7.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--creates", type=int, default=10000)
    parser.add_argument("--options", action="store_true", help="measure the store options instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="apiserver-durable-", dir=Path.cwd()) as tmp:
        workdir = Path(tmp)
        if args.options:
            store_options(workdir)
            return
        memory, memory_cpu = measure(workdir, None, args.clients, args.creates)
        durable, durable_cpu = measure(workdir, workdir / "data", args.clients, args.creates)
    print(f"API server creates/s, {args.clients} clients, {args.creates} ConfigMaps:")
    print(f"  in memory (peer): {memory:7.0f}/s, server CPU {memory_cpu:4.0f} µs a create")
    print(f"  --data-dir:       {durable:7.0f}/s, server CPU {durable_cpu:4.0f} µs a create, each on disk before it "
          f"is acknowledged ({durable / memory:.0%} of the peer; goal >= {GOAL_CREATES_PER_S}/s: "
          f"{verdict(durable >= GOAL_CREATES_PER_S)})")
    print(f"  recorded on 4f871b5, not measured by this run (write-behind, acknowledged creates lost on SIGKILL): "
          f"{BEFORE_CREATES_PER_S:.0f}/s with --data-dir, {BEFORE_PEER_CREATES_PER_S:.0f}/s in memory")


if __name__ == "__main__":
    main()
