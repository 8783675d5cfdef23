"""Many watches of a large object whose clients never read: the API server stays within its watch budget and
closes them (their clients re-list), while a watch that keeps up gets every event.

Before, each slow watch held its own encoding of the event and a copy in its connection's buffer: memory grew
with watches × object size (771 watches of a 15 MB ConfigMap: 21.4 GB, OOM-killed). The server runs as
`vdpactl sim apiserver`, in its own process, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx

from hostile.watch_clients import CONFIGMAPS, apiserver, closed_by_server
from vdpa_operator.bounded import MiB
from vdpa_operator.sim.apiserver.watchstream import WatchBudget

WATCHES = 100
SIZE = 5 * MiB // 2
UPDATES = 10


def test_slow_watches_of_a_large_object_stay_within_the_budget_and_are_closed(tmp_path: Path) -> None:
    with apiserver(tmp_path) as server, ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=server.url, headers=server.headers, verify=server.verify,
                                                  timeout=60))
        client.post(CONFIGMAPS, json={"metadata": {"name": "big"}, "data": {"a": "x" * SIZE}}).raise_for_status()
        client.get(f"{CONFIGMAPS}/big").raise_for_status()
        before = server.peak_rss()

        slow = [server.slow_watch() for _ in range(WATCHES)]
        for sock in slow:
            stack.callback(sock.close)
        events: list[dict[str, Any]] = []
        watching = threading.Event()

        def fast() -> None:
            with httpx.Client(base_url=server.url, headers=server.headers, verify=server.verify,
                              timeout=60) as own, \
                    own.stream("GET", CONFIGMAPS, params={"watch": "1", "timeoutSeconds": "60"}) as stream:
                for line in stream.iter_lines():
                    events.append(json.loads(line))
                    watching.set()
                    if len(events) == UPDATES + 1:
                        return

        reader = threading.Thread(target=fast, daemon=True)
        reader.start()
        assert watching.wait(30), "the fast watch got no event"
        for i in range(UPDATES):
            client.patch(f"{CONFIGMAPS}/big", json={"data": {"a": str(i) * SIZE}},
                         headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
        reader.join(60)
        peak = server.peak_rss()
        deadline = time.monotonic() + 15
        closed = sum(closed_by_server(sock, deadline) for sock in slow)

    assert [e["type"] for e in events] == ["ADDED"] + ["MODIFIED"] * UPDATES
    assert [e["object"]["data"]["a"][:1] for e in events[1:]] == [str(i) for i in range(UPDATES)]
    assert closed == WATCHES
    # What the watches may hold by the budget, plus what the store itself keeps: every version of the object
    # (the watch log) and the decoded patch beside it.
    allowed = WatchBudget().bound(WATCHES) + 2 * (UPDATES + 1) * SIZE
    assert peak - before <= allowed, f"peak RSS grew {(peak - before) / MiB:.0f} MiB, allowed {allowed / MiB:.0f}"
