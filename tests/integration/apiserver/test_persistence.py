"""A state directory makes the server's state survive a restart: objects, CRDs registered at run time and the
resourceVersion counter. Each write is on disk before it is answered; concurrent writes share a commit."""

from __future__ import annotations

import asyncio
import json
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
from vdpa_operator.sim.apiserver.persist import DB_FILE, LEGACY_FILE, DataDirError
from vdpa_operator.sim.apiserver.store import Write


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
    assert (data / DB_FILE).exists()

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


def test_concurrent_writes_share_commits_and_all_come_back(tmp_path: Path) -> None:
    store = default_store(persist_dir=tmp_path)
    nodes = store.registry.lookup("", "v1", "nodes")
    assert nodes is not None and store._persister is not None
    before = store._persister.commits

    async def create_all() -> None:
        await asyncio.gather(*(store.write(Write("create", nodes, body={"metadata": {"name": f"worker-{i:04d}"}}))
                               for i in range(400)))

    asyncio.run(create_all())
    assert store._persister.commits - before <= 100  # group commit: each commit carries several writes
    store.close()

    restored = default_store(persist_dir=tmp_path)
    assert {n["metadata"]["name"] for n in restored.list(nodes, None, lambda _: True)[0]} == {
        f"worker-{i:04d}" for i in range(400)}
    assert restored.resource_version == store.resource_version
    restored.close()


def test_a_state_file_of_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / LEGACY_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(DataDirError, match=f"{tmp_path / LEGACY_FILE}: not a state file of format 1 .*move it aside"):
        default_store(persist_dir=tmp_path)
