"""The API server's memory under 1,000 watches of a 1 MiB object whose clients never read, while the object is
updated: goal bounded, within `WatchBudget.bound(watches)` (besides the versions the store itself keeps). Before
the budget every slow watch held its own copy of each event it was writing (771 watches of a 15 MB ConfigMap:
21.4 GB, OOM-killed). The server runs as `vdpactl sim apiserver`, in its own process; its peak RSS is read from
/proc. One more watch reads everything and must get every event.

    .venv/bin/python bench/apiserver_watch.py [--watches N] [--size BYTES] [--updates N]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from common import verdict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hostile.watch_clients import CONFIGMAPS, apiserver, closed_by_server  # noqa: E402
from vdpa_operator.bounded import MiB  # noqa: E402
from vdpa_operator.sim.apiserver.watchstream import WatchBudget  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--size", type=int, default=MiB)
    parser.add_argument("--updates", type=int, default=20)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.watches + 256)), hard))

    sockets: list[socket.socket] = []
    with tempfile.TemporaryDirectory(prefix="vdpa-bench-watch-") as tmp, apiserver(Path(tmp)) as server:
        try:
            with httpx.Client(base_url=server.url, headers=server.headers, verify=server.verify, timeout=120) as client:
                client.post(CONFIGMAPS, json={"metadata": {"name": "big"},
                                              "data": {"a": "x" * args.size}}).raise_for_status()
                baseline = server.peak_rss()
                sockets = [server.slow_watch() for _ in range(args.watches)]
                events: list[dict[str, Any]] = []

                def fast() -> None:
                    with httpx.Client(base_url=server.url, headers=server.headers, verify=server.verify,
                                      timeout=120) as own, \
                            own.stream("GET", CONFIGMAPS, params={"watch": "1"}) as stream:
                        for line in stream.iter_lines():
                            events.append(json.loads(line))
                            if len(events) == args.updates + 1:
                                return

                reader = threading.Thread(target=fast, daemon=True)
                reader.start()
                time.sleep(2)  # the watches' initial events go out
                before = server.peak_rss()
                start = time.perf_counter()
                for i in range(args.updates):
                    client.patch(f"{CONFIGMAPS}/big", json={"data": {"a": str(i % 10) * args.size}},
                                 headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
                reader.join(120)
                elapsed = time.perf_counter() - start
                peak = server.peak_rss()
            deadline = time.monotonic() + 30
            closed = sum(closed_by_server(sock, deadline) for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()

    budget = WatchBudget()
    bound = budget.bound(args.watches)
    kept = 2 * (args.updates + 1) * args.size  # the store's own: each version in its watch log, the decoded patch
    growth = peak - before
    opening = before - baseline
    everything = len(events) == args.updates + 1
    print(f"{args.watches} watches that never read, a {args.size / MiB:g} MiB ConfigMap updated {args.updates} "
          f"times in {elapsed:.1f} s: server peak RSS {peak / MiB:.0f} MiB, grew {growth / MiB:.0f} MiB; bound "
          f"{bound / MiB:.0f} MiB for watches (WatchBudget: total_bytes {budget.total_bytes / MiB:g} MiB + "
          f"{args.watches} x write_chunk {budget.write_chunk // 1024} KiB) + {kept / MiB:.0f} MiB the store "
          f"keeps (goal bounded: {verdict(growth <= bound + kept)}); one copy per watch would be "
          f"{args.watches * args.size / MiB:.0f} MiB")
    print(f"opening the {args.watches} watches (TLS connections, each sent the object as its first event) raised "
          f"the peak by {opening / MiB:.0f} MiB before the updates, {opening / args.watches / 1024:.0f} KiB a watch")
    print(f"slow watches closed by the server: {closed}/{args.watches} (goal all: {verdict(closed == args.watches)}); "
          f"the watch that reads got {len(events)}/{args.updates + 1} events (goal all: {verdict(everything)})")


if __name__ == "__main__":
    main()
