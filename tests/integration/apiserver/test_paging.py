"""List paging: `limit` + `continue`, with `remainingItemCount`, over a snapshot taken at the first page (later
pages are as of the same resourceVersion, as etcd serves them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lightkube.resources.core_v1 import ConfigMap

from integration.apiserver.storage_support import CONFIGMAPS, http, lightkube, running

KUBECTL = Path(sys.executable).with_name("kubectl")


def test_pages_follow_continue_tokens_over_one_snapshot(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        for name in ("c1", "c2", "c3", "c4", "c5", "c6", "c7"):
            client.post(CONFIGMAPS, json={"metadata": {"name": name, "labels": {"odd": str(name[-1] in "1357")}}})
        first = client.get(CONFIGMAPS, params={"limit": "3"}).json()
        assert [i["metadata"]["name"] for i in first["items"]] == ["c1", "c2", "c3"]
        assert first["metadata"]["remainingItemCount"] == 4 and first["metadata"]["continue"]

        client.post(CONFIGMAPS, json={"metadata": {"name": "c35"}})  # after the first page, in the middle
        client.delete(f"{CONFIGMAPS}/c7")
        second = client.get(CONFIGMAPS, params={"limit": "3", "continue": first["metadata"]["continue"]}).json()
        assert [i["metadata"]["name"] for i in second["items"]] == ["c4", "c5", "c6"]
        assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert second["metadata"]["remainingItemCount"] == 1
        last = client.get(CONFIGMAPS, params={"limit": "3", "continue": second["metadata"]["continue"]}).json()
        assert [i["metadata"]["name"] for i in last["items"]] == ["c7"]
        assert "continue" not in last["metadata"] and "remainingItemCount" not in last["metadata"]

        selected = client.get(CONFIGMAPS, params={"limit": "2", "labelSelector": "odd=True"}).json()
        assert [i["metadata"]["name"] for i in selected["items"]] == ["c1", "c3"]
        assert selected["metadata"]["continue"] and "remainingItemCount" not in selected["metadata"]

        assert client.get(CONFIGMAPS, params={"limit": "2", "continue": "bogus"}).status_code == 400
        assert client.get(CONFIGMAPS, params={"limit": "-1"}).status_code == 400


def test_clients_read_every_page(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        names = [f"cm-{i:02d}" for i in range(9)]
        for name in names:
            client.post(CONFIGMAPS, json={"metadata": {"name": name}})
        listed = lightkube(api).list(ConfigMap, namespace="default", chunk_size=2)
        assert [c.metadata.name for c in listed] == names

        env = {**os.environ, "HOME": str(tmp_path)}
        out = subprocess.run([str(KUBECTL), "--kubeconfig", str(api.kubeconfig_path), "get", "configmaps",
                              "--chunk-size=4", "-o", "name"], capture_output=True, text=True, env=env, timeout=30,
                             check=True).stdout
        assert out.split() == [f"configmap/{name}" for name in names]
