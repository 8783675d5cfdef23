"""A state directory makes the server's state survive a restart: objects, CRDs registered at run time and the
resourceVersion counter. Writes are batched (write-behind), so a burst of updates stays fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from integration.apiserver.storage_support import (
    CONFIGMAPS,
    CRDS,
    POLICIES,
    WIDGETS,
    http,
    policy,
    running,
    watch_events,
    widget_crd,
)
from vdpa_operator.sim.apiserver import default_store
from vdpa_operator.sim.apiserver.persist import STATE_FILE


def test_a_restarted_server_serves_the_same_state_and_versions_keep_growing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running(tmp_path, persist_dir=data) as api, http(api) as client:
        kept = client.post(CONFIGMAPS, json={"metadata": {"name": "kept"}, "data": {"k": "v"}}).json()
        held = client.post(POLICIES, json=policy("p", deviceType=None)).json()
        client.post(CRDS, json=widget_crd())
        widget = client.post(WIDGETS, json={"metadata": {"name": "w"}, "spec": {"color": "red"}}).json()
        client.post(CONFIGMAPS, json={"metadata": {"name": "gone"}})
        client.delete(f"{CONFIGMAPS}/gone")
        last = int(client.get(CONFIGMAPS).json()["metadata"]["resourceVersion"])
    assert (data / STATE_FILE).exists()

    with running(tmp_path, persist_dir=data) as api, http(api) as client:
        assert client.get(f"{CONFIGMAPS}/kept").json() == kept
        assert client.get(f"{POLICIES}/p").json() == held
        assert client.get(f"{WIDGETS}/w").json() == widget  # the CRD came back with its objects
        assert client.get(f"{CONFIGMAPS}/gone").status_code == 404
        assert int(client.get(CONFIGMAPS).json()["metadata"]["resourceVersion"]) == last
        newer = client.post(CONFIGMAPS, json={"metadata": {"name": "newer"}}).json()
        assert int(newer["metadata"]["resourceVersion"]) == last + 1

        # The event log does not survive: a watch from before the restart must re-list; from now it works.
        [expired] = watch_events(client, CONFIGMAPS, 1, resourceVersion=kept["metadata"]["resourceVersion"])
        assert expired["type"] == "ERROR" and expired["object"]["code"] == 410
        client.post(CONFIGMAPS, json={"metadata": {"name": "newest"}})
        [fresh] = watch_events(client, CONFIGMAPS, 1, resourceVersion=newer["metadata"]["resourceVersion"])
        assert fresh["object"]["metadata"]["name"] == "newest"


def test_a_burst_of_writes_is_written_behind_in_few_snapshots(tmp_path: Path) -> None:
    store = default_store(persist_dir=tmp_path, flush_interval=0.2)
    nodes = store.registry.lookup("", "v1", "nodes")
    assert nodes is not None
    for i in range(1000):
        store.create(nodes, "", {"metadata": {"name": f"worker-{i:04d}"}})
    began = time.monotonic()
    for i in range(1000):
        store.patch(nodes, "", f"worker-{i:04d}", "application/merge-patch+json",
                    {"metadata": {"labels": {"round": "2"}}})
    elapsed = time.monotonic() - began
    store.close()
    assert store._persister is not None
    assert store._persister.writes <= (elapsed + 1) / 0.2 + 3  # at most one snapshot per interval
    assert elapsed < 5

    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["resourceVersion"] == store.resource_version
    restored = default_store(persist_dir=tmp_path)
    assert restored.get(nodes, "", "worker-0999")["metadata"]["labels"] == {"round": "2"}
    assert restored.resource_version == store.resource_version
    restored.close()


def test_a_state_file_of_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="move it away"):
        default_store(persist_dir=tmp_path)
