"""In-memory object storage with kube-apiserver's write rules, one global resourceVersion and an event log.

Pure Python, no HTTP: the aiohttp layer (`http.py`) turns requests into these calls, and tests may call the
store directly. Every write runs under one lock, so a thread other than the server's (a test seeding objects,
`compact()`) may use it too. Watch listeners run under that lock: they must only hand the event on.

Rules kept from the real server: resourceVersion is a global counter bumped by every write; a write that
changes nothing is not a write (no new version, no event); `metadata.generation` of a custom resource starts at
1 and counts spec changes (everything but metadata, and status when it has its own subresource); a custom
resource's PUT must carry the current resourceVersion; with a status subresource the main resource cannot
change status and `/status` can change nothing else.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import logging
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vdpa_operator.sim.apiserver import errors
from vdpa_operator.sim.apiserver.errors import bad_request
from vdpa_operator.sim.apiserver.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, json_patch, merge_patch
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES, Registry, ResourceType
from vdpa_operator.sim.apiserver.selectors import Predicate

log = logging.getLogger(__name__)

Object = dict[str, Any]
ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
DEFAULT_LOG_SIZE = 10_000
"""Events kept for watches that resume from an older resourceVersion; older ones answer 410."""


@dataclass(frozen=True)
class WatchEvent:
    """One write as watchers see it. `object` and `old` are shared snapshots: never mutate them."""

    type: str
    rtype: ResourceType
    object: Object
    resource_version: int
    old: Object | None = None
    """The object before a MODIFIED write, so a selector watch can turn it into ADDED/DELETED."""

    def seen_by(self, rtype: ResourceType, namespace: str | None, match: Predicate) -> WatchEvent | None:
        """This event as a watch of `rtype` in `namespace` (None: all) with selector `match` must see it."""
        if self.rtype != rtype or (namespace and _namespace(self.object) != namespace):
            return None
        now = match(self.object)
        before = self.old is not None and match(self.old)
        if self.type != MODIFIED:
            return self if now else None
        if now and before:
            return self
        if now:
            return WatchEvent(ADDED, self.rtype, self.object, self.resource_version)
        if before:
            return WatchEvent(DELETED, self.rtype, self.object, self.resource_version)
        return None


Listener = Callable[[WatchEvent], None]


@dataclass
class Watch:
    """What a watch gets: the events it must replay first, then live events through its listener."""

    backlog: list[WatchEvent]
    cancel: Callable[[], None]


def _namespace(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("namespace", ""))


def _name(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(obj: Object, *, without_status: bool) -> Object:
    """What `metadata.generation` counts: the object without metadata (and without status)."""
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if without_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


def _same(a: Object, b: Object) -> bool:
    """Equal apart from resourceVersion: writing `b` over `a` would change nothing."""
    def strip(o: Object) -> Object:
        meta = {k: v for k, v in o.get("metadata", {}).items() if k != "resourceVersion"}
        return {**o, "metadata": meta}

    return strip(a) == strip(b)


class Store:
    """Objects of the registered types, keyed by (type, namespace, name)."""

    def __init__(
        self,
        types: Iterable[ResourceType],
        *,
        log_size: int = DEFAULT_LOG_SIZE,
        namespaces: Iterable[str] = BUILTIN_NAMESPACES,
    ) -> None:
        self.registry = Registry(types)
        self._lock = threading.RLock()
        self._objects: dict[tuple[ResourceType, str, str], Object] = {}
        self._rv = 0
        self._log: deque[WatchEvent] = deque()
        self._log_size = log_size
        self._compacted = 0
        """Every event with a resourceVersion above this one is still in the log."""
        self._listeners: dict[int, Listener] = {}
        self._listener_ids = itertools.count()
        ns_type = self.registry.lookup("", "v1", "namespaces")
        if ns_type is not None:
            for ns in namespaces:
                self.create(ns_type, "", {"metadata": {"name": ns}, "status": {"phase": "Active"}})

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion: a list made now is consistent as of this version."""
        return self._rv

    # --- reads -------------------------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        with self._lock:
            return copy.deepcopy(self._current(rtype, namespace, name))

    def list(self, rtype: ResourceType, namespace: str | None, match: Predicate) -> tuple[list[Object], int]:
        """Matching objects sorted by namespace and name (etcd key order), and the version they are as of."""
        with self._lock:
            items = [
                obj
                for (t, ns, _), obj in sorted(self._objects.items(), key=lambda kv: kv[0][1:])
                if t == rtype and (not namespace or ns == namespace) and match(obj)
            ]
            return copy.deepcopy(items), self._rv

    # --- writes ------------------------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str, body: Any) -> Object:
        if rtype.namespaced and not namespace:
            raise bad_request(f"a {rtype.kind} is namespaced: create it in a namespace")
        obj = self._typed_body(rtype, namespace, body)
        meta = obj["metadata"]
        if not meta.get("name"):
            if not meta.get("generateName"):
                required = "Required value: name or generateName is required"
                raise errors.invalid(rtype.kind, "", "metadata.name", required)
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if rtype.status_dropped_on_create:
            obj.pop("status", None)
        for server_owned in ("resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        with self._lock:
            key = (rtype, namespace if rtype.namespaced else "", meta["name"])
            if key in self._objects:
                raise errors.already_exists(rtype.group_resource, meta["name"])
            return self._write(ADDED, key, obj, None)

    def update(
        self, rtype: ResourceType, namespace: str, name: str, body: Any, *, subresource: str | None = None
    ) -> Object:
        """PUT: replace the object (or only its status, with subresource="status")."""
        obj = self._typed_body(rtype, namespace, body)
        with self._lock:
            old = self._current(rtype, namespace, name)
            rv = obj["metadata"].get("resourceVersion", "")
            if not rv and not rtype.unconditional_update:
                raise errors.invalid(
                    rtype.kind, name, "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update"
                )
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype.group_resource, name)
            return self._replace(rtype, old, obj, subresource)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
    ) -> Object:
        """PATCH: apply the patch to the stored object, then update with what results. A resourceVersion in
        the patch is a precondition, as in kube-apiserver."""
        with self._lock:
            old = self._current(rtype, namespace, name)
            if content_type == JSON_PATCH:
                patched = json_patch(old, patch)
            elif content_type == MERGE_PATCH or (content_type == STRATEGIC_MERGE_PATCH and not rtype.custom):
                # Strategic merge is a JSON merge here: no list merge keys or $patch directives yet.
                if not isinstance(patch, dict):
                    raise bad_request("merge patch body must be a JSON object")
                patched = merge_patch(old, patch)
            else:
                accepted = [JSON_PATCH, MERGE_PATCH] + ([] if rtype.custom else [STRATEGIC_MERGE_PATCH])
                raise errors.unsupported_media_type(content_type, accepted)
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not a JSON object")
            obj = self._typed_body(rtype, namespace, patched)
            if obj["metadata"].get("resourceVersion", "") != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype.group_resource, name)
            return self._replace(rtype, old, obj, subresource)

    def delete(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        """Remove the object at once (finalizers and grace periods are not modelled yet)."""
        with self._lock:
            old = self._current(rtype, namespace, name)
            key = (rtype, _namespace(old), name)
            gone = {**old, "metadata": dict(old["metadata"])}
            return self._write(DELETED, key, gone, old)

    # --- watch -------------------------------------------------------------------------------------------------

    def watch(
        self, rtype: ResourceType, namespace: str | None, resource_version: str | None, match: Predicate,
        listener: Listener,
    ) -> Watch:
        """Replay what a watch from `resource_version` missed, and subscribe `listener` to what comes next,
        atomically. No version (or "0") starts with a synthetic ADDED per existing object, as the real server
        does; a version older than the log is a 410 `StatusError`."""
        with self._lock:
            if resource_version in (None, "", "0"):
                items, _ = self.list(rtype, namespace, match)
                backlog = [
                    WatchEvent(ADDED, rtype, obj, int(obj["metadata"]["resourceVersion"])) for obj in items
                ]
            else:
                since = self._parse_rv(resource_version)
                if since < self._compacted:
                    raise errors.expired(since, self._compacted + 1)
                seen = (e.seen_by(rtype, namespace, match) for e in self._log if e.resource_version > since)
                backlog = [e for e in seen if e is not None]

            def deliver(event: WatchEvent) -> None:
                seen_event = event.seen_by(rtype, namespace, match)
                if seen_event is not None:
                    listener(seen_event)

            ident = next(self._listener_ids)
            self._listeners[ident] = deliver

        def cancel() -> None:
            with self._lock:
                self._listeners.pop(ident, None)

        return Watch(backlog, cancel)

    def compact(self, keep_last: int = 0) -> None:
        """Forget all but the newest `keep_last` events, as etcd compaction does: a watch from an older
        resourceVersion then gets 410 and must re-list."""
        with self._lock:
            while len(self._log) > keep_last:
                self._log.popleft()
            self._compacted = self._log[0].resource_version - 1 if self._log else self._rv

    # --- internals ---------------------------------------------------------------------------------------------

    @staticmethod
    def _parse_rv(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise bad_request(f'invalid resource version "{text}"') from None
        if value < 0:
            raise bad_request(f'invalid resource version "{text}"')
        return value

    def _current(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        obj = self._objects.get((rtype, namespace if rtype.namespaced else "", name))
        if obj is None:
            raise errors.not_found(rtype.group_resource, name)
        return obj

    def _typed_body(self, rtype: ResourceType, namespace: str, body: Any) -> Object:
        """A copy of the request body with its type meta and namespace checked and filled in."""
        if not isinstance(body, dict):
            raise bad_request(f"the body of a {rtype.kind} must be a JSON object")
        for field, want in (("apiVersion", rtype.api_version), ("kind", rtype.kind)):
            got = body.get(field, want)
            if got != want:
                what = "API version" if field == "apiVersion" else "kind"
                raise bad_request(f"the {what} in the data ({got}) does not match the expected {what} ({want})")
        # Type meta first, as the real server writes it.
        obj = {"apiVersion": rtype.api_version, "kind": rtype.kind, **copy.deepcopy(body)}
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise bad_request("metadata must be a JSON object")
        meta = obj["metadata"]
        if rtype.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _replace(self, rtype: ResourceType, old: Object, new: Object, subresource: str | None) -> Object:
        """The update rules shared by PUT and PATCH; `new` has passed the resourceVersion checks."""
        name = _name(old)
        if _name(new) != name:
            raise bad_request(f"the name of the object ({_name(new)}) does not match the name on the URL ({name})")
        if subresource == "status":
            # Only status may change: everything else comes from the stored object.
            status, has_status = new.get("status"), "status" in new
            new = copy.deepcopy(old)
            if has_status:
                new["status"] = status
            else:
                new.pop("status", None)
        elif rtype.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = new["metadata"]
        for kept in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        if rtype.tracks_generation:
            without_status = rtype.status_subresource
            if _content(old, without_status=without_status) != _content(new, without_status=without_status):
                meta["generation"] = old["metadata"].get("generation", 0) + 1
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if _same(old, new):
            return copy.deepcopy(old)
        key = (rtype, _namespace(old), name)
        return self._write(MODIFIED, key, new, old)

    def _write(self, kind: str, key: tuple[ResourceType, str, str], obj: Object, old: Object | None) -> Object:
        """Commit one change under the lock: a new resourceVersion, the log, the listeners."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if kind == DELETED:
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        event = WatchEvent(kind, key[0], obj, self._rv, old if kind == MODIFIED else None)
        self._log.append(event)
        if len(self._log) > self._log_size:
            self._compacted = self._log.popleft().resource_version
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # a broken watcher must not fail the write
                log.exception("watch listener failed on %s %s", kind, key[2])
        return copy.deepcopy(obj)
