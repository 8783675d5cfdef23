"""Watch extras clients rely on: BOOKMARK events (after silence, and just before the server ends the watch),
`sendInitialEvents` streaming lists, and a too-old resourceVersion answered as an ERROR event (410 Expired)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap

from integration.apiserver.storage_support import CONFIGMAPS, NS, http, lightkube, running, watch_events


def test_a_quiet_watch_gets_bookmarks_that_carry_the_progress_of_other_writes(tmp_path: Path) -> None:
    with running(tmp_path, bookmark_interval=0.2) as api, http(api) as client:
        start = client.post(CONFIGMAPS, json={"metadata": {"name": "a"}}).json()["metadata"]["resourceVersion"]
        params = {"watch": "1", "allowWatchBookmarks": "true", "resourceVersion": start, "timeoutSeconds": "5"}
        with client.stream("GET", CONFIGMAPS, params=params) as watch:
            lines = watch.iter_lines()
            began = time.monotonic()
            first = json.loads(next(lines))
            assert 0.15 < time.monotonic() - began < 2
            # Writes this watch does not see (another namespace) still move its bookmarks on.
            other = client.post(f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "b"}}).json()
            second = json.loads(next(lines))
        assert first == {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
                                                       "metadata": {"resourceVersion": start}}}
        assert second["type"] == "BOOKMARK"
        assert second["object"]["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]
        # Resuming from a bookmark loses nothing.
        client.post(CONFIGMAPS, json={"metadata": {"name": "c"}})
        resumed = watch_events(client, CONFIGMAPS, 1, resourceVersion=second["object"]["metadata"]["resourceVersion"])
        assert resumed[0]["type"] == "ADDED" and resumed[0]["object"]["metadata"]["name"] == "c"


def test_the_last_bookmark_comes_just_before_the_server_ends_the_watch(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        rv = client.get(CONFIGMAPS).json()["metadata"]["resourceVersion"]
        with client.stream("GET", CONFIGMAPS, params={"watch": "1", "allowWatchBookmarks": "true",
                                                      "resourceVersion": rv, "timeoutSeconds": "0.3"}) as watch:
            events = [json.loads(line) for line in watch.iter_lines()]
        assert [e["type"] for e in events] == ["BOOKMARK"]
        with client.stream("GET", CONFIGMAPS, params={"watch": "1", "resourceVersion": rv,
                                                      "timeoutSeconds": "0.3"}) as watch:
            assert list(watch.iter_lines()) == []  # without allowWatchBookmarks, none


def test_send_initial_events_streams_the_list_then_marks_its_end(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        for name in ("a", "b"):
            client.post(CONFIGMAPS, json={"metadata": {"name": name}})
        params = {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
                  "allowWatchBookmarks": "true", "timeoutSeconds": "5"}
        with client.stream("GET", CONFIGMAPS, params=params) as watch:
            lines = watch.iter_lines()
            initial = [json.loads(next(lines)) for _ in range(3)]
            client.post(CONFIGMAPS, json={"metadata": {"name": "c"}})
            live = json.loads(next(lines))
        assert [(e["type"], e["object"]["metadata"].get("name")) for e in initial] == [
            ("ADDED", "a"), ("ADDED", "b"), ("BOOKMARK", None)]
        assert initial[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "c")

        refused = client.get(CONFIGMAPS, params={"watch": "1", "sendInitialEvents": "true"})
        assert refused.status_code == 422
        assert [c["field"] for c in refused.json()["details"]["causes"]] == ["resourceVersionMatch",
                                                                            "allowWatchBookmarks"]


def test_a_watch_from_a_compacted_version_is_an_error_event_lightkube_raises_as_410(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        old = client.post(CONFIGMAPS, json={"metadata": {"name": "a"}}).json()["metadata"]["resourceVersion"]
        client.post(CONFIGMAPS, json={"metadata": {"name": "b"}})
        api.compact()
        with pytest.raises(ApiError) as gone:
            next(iter(lightkube(api).watch(ConfigMap, namespace="default", resource_version=old)))
        assert (gone.value.status.code, gone.value.status.reason) == (410, "Expired")


def test_a_watch_of_one_name_sees_that_object_only(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        rv = client.get(CONFIGMAPS).json()["metadata"]["resourceVersion"]
        params = {"watch": "1", "resourceVersion": rv, "fieldSelector": "metadata.name=mine", "timeoutSeconds": "5"}
        with client.stream("GET", CONFIGMAPS, params=params) as watch:
            lines = watch.iter_lines()
            client.post(CONFIGMAPS, json={"metadata": {"name": "other"}})
            client.post(CONFIGMAPS, json={"metadata": {"name": "mine"}})
            client.patch(f"{CONFIGMAPS}/mine", json={"data": {"a": "b"}},
                         headers={"Content-Type": "application/merge-patch+json"})
            events = [json.loads(next(lines)) for _ in range(2)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "mine"),
                                                                                 ("MODIFIED", "mine")]
