"""Object storage with kube-apiserver's write rules, one global resourceVersion, an event log, CRDs that come
and go, and (optionally) a state directory that survives restarts.

No HTTP: the aiohttp layer (`server.py`) turns requests into `Write`s and reads, and tests may call the store
directly. Commits run under one lock, so other threads (a test seeding objects, `compact()`) may use it too.
Watch listeners run under that lock: they must only hand the event on.

The write path is kube-apiserver's, in its order (`Store.write`):

    decode + default  →  mutating admission  →  strategy (status, generation, uid…)  →  schema validation
    →  validating admission  →  commit, with the resourceVersion read at the start as precondition

Decoding types the body, applies built-in defaults and, for custom resources, the CRD schema: unknown fields
pruned (`fieldValidation=Warn` warns, `Strict` refuses), disallowed nulls dropped, `default`s filled in.
PATCH applies the patch to the object read at the start; server-side apply (`application/apply-patch+yaml`)
creates a missing object and otherwise merges the applied configuration like a JSON merge patch: managedFields
and field-ownership conflicts are not tracked (`force` is accepted and changes nothing). A commit whose
precondition no longer holds (another write came in while admission ran) starts the whole write again on the
fresh object, as `GuaranteedUpdate` does; a PUT that names a stale resourceVersion is a 409 Conflict instead.

Admission — where webhooks plug in. `Store.write(write, admission)` takes an optional object with two methods,
each sync or async, called outside the lock with an `AdmissionAttributes`:

    admission.mutate(attrs)   -> the new object, or None to keep attrs.object   (after decoding/defaulting)
    admission.validate(attrs) -> None                                          (after schema validation)

Either may raise `StatusError` to refuse the write. `attrs.object` is a private copy the call may change;
`attrs.old_object` is shared and must not be changed. `operation` is CREATE, UPDATE (PUT, PATCH, apply on an
existing object) or DELETE (object None); warnings appended to `attrs.warnings` land in `Write.warnings`, which
the server sends as `Warning` headers. A mutated object is decoded again (pruned and defaulted), as
kube-apiserver re-decodes a webhook's patch result. `dryRun=All` runs everything but the commit. The server
passes its `webhooks.Webhooks` when any webhook configuration exists, None otherwise; the synchronous forms
(`create`, `update`, `patch`, `delete`, for tests and seeding) run without admission.

Other rules kept from the real server: a write that changes nothing is not a write (no new version, no event);
`metadata.generation` starts at 1 and counts changes outside metadata (and status, with the status
subresource); a custom resource's PUT must carry the current resourceVersion; with a status subresource the
main resource cannot change status and `/status` can change nothing else; DELETE of an object with finalizers
only sets deletionTimestamp (MODIFIED) until an update removes the last finalizer (then DELETED), and no new
finalizer may be added meanwhile; a namespaced object needs an existing namespace that is not terminating;
deleting a namespace deletes what is in it, then the namespace; a CRD's objects go with it. Lists page with
`limit`/`continue` over a consistent snapshot (kept for the most recent listings; an older token continues
over current objects). Objects are stored copy-on-write: a stored object is never changed in place, so reads and
snapshots share them without copying.

Not modelled: strategic merge patch is a JSON merge patch (no list merge keys); no garbage collection of
ownerReferences; pods go at once (no kubelet grace period); core/v1 and events.k8s.io/v1 Events are stored
apart; CEL `x-kubernetes-validations` and `format` are not checked (see schema.py).
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import datetime
import inspect
import itertools
import json
import logging
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vdpa_operator import yamlio
from vdpa_operator.bounded import ParseError
from vdpa_operator.sim.apiserver import errors, persist
from vdpa_operator.sim.apiserver.errors import StatusError, bad_request
from vdpa_operator.sim.apiserver.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
)
from vdpa_operator.sim.apiserver.resources import (
    BUILTIN_NAMESPACES,
    CRD_RESOURCE,
    Registry,
    ResourceType,
    crd_problems,
    name_errors,
    types_from_crd,
)
from vdpa_operator.sim.apiserver.schema import normalize, validate
from vdpa_operator.sim.apiserver.selectors import Predicate

log = logging.getLogger(__name__)

Object = dict[str, Any]
Objects = list[Object]
ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"
CREATE, UPDATE, DELETE = "CREATE", "UPDATE", "DELETE"
DEFAULT_LOG_SIZE = 10_000
"""Events kept for watches that resume from an older resourceVersion; older ones answer 410."""
DEFAULT_BOOKMARK_INTERVAL = 60.0
"""Seconds of silence after which a watch that allows bookmarks gets one (kube-apiserver: about a minute)."""
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
"""Namespaces kube-apiserver refuses to delete."""
_RETRIES = 64
_SNAPSHOTS = 64
"""List snapshots kept for `continue` tokens."""


# --- what callers pass and get --------------------------------------------------------------------------------


@dataclass
class Write:
    """One write request. `verb`: create, update (PUT), patch (any content type, apply included), delete, evict."""

    verb: str
    rtype: ResourceType
    namespace: str = ""
    name: str = ""
    body: Any = None
    """The object (create, update), the patch document (patch), the DeleteOptions (delete) or Eviction."""
    subresource: str | None = None
    content_type: str = ""
    dry_run: bool = False
    field_manager: str = ""
    force: bool | None = None
    field_validation: str = ""
    """Ignore, Warn (the default) or Strict: what an unknown field in a custom resource earns."""
    options: dict[str, Any] | None = None
    """The Create/Update/Patch/DeleteOptions admission sees."""
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    """Set by the store when the write created the object (POST, or an apply of a missing object): 201."""


@dataclass
class AdmissionAttributes:
    """One write as admission sees it (kube-apiserver's `admission.Attributes`)."""

    operation: str
    rtype: ResourceType
    namespace: str
    name: str
    object: Object | None
    old_object: Object | None = None
    subresource: str = ""
    dry_run: bool = False
    options: dict[str, Any] | None = None
    user: Mapping[str, Any] = field(
        default_factory=lambda: {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]})
    warnings: list[str] = field(default_factory=list)


class Admission(Protocol):
    """Admission plugins (webhooks.py): see the module docstring. Each method may be sync or async."""

    def mutate(self, attrs: AdmissionAttributes) -> Object | Awaitable[Object | None] | None: ...

    def validate(self, attrs: AdmissionAttributes) -> Awaitable[None] | None: ...


@dataclass(frozen=True)
class WatchEvent:
    """One write as watchers see it. `object` and `old` are shared snapshots: never mutate them."""

    type: str
    rtype: ResourceType
    object: Object
    resource_version: int
    old: Object | None = None
    """The object before a MODIFIED write, so a selector watch can turn it into ADDED/DELETED."""
    variants: dict[tuple[str, str], WatchEvent] = field(default_factory=dict, compare=False, repr=False)
    """The forms selector and other-version watches see, made once and shared (so is their encoding)."""

    def seen_by(self, rtype: ResourceType, namespace: str | None, match: Predicate) -> WatchEvent | None:
        """This event as a watch of `rtype` in `namespace` (None: all) with selector `match` must see it."""
        if self.rtype.group_resource != rtype.group_resource or (namespace and _namespace(self.object) != namespace):
            return None
        now = match(self.object)
        before = self.old is not None and match(self.old)
        if self.type == MODIFIED and not (now and before):
            if now:
                return self._as(ADDED, rtype)
            if before:
                return self._as(DELETED, rtype)
            return None
        if not now:
            return None
        if self.rtype.api_version != rtype.api_version:
            return self._as(self.type, rtype)
        return self

    def _as(self, kind: str, rtype: ResourceType) -> WatchEvent:
        key = (kind, rtype.api_version)
        variant = self.variants.get(key)
        if variant is None:
            variant = self.variants[key] = WatchEvent(kind, rtype, _served(self.object, rtype), self.resource_version)
        return variant


Listener = Callable[[WatchEvent], None]


@dataclass
class Watch:
    """What a watch gets: the events it must replay first, then live events through its listener."""

    backlog: list[WatchEvent]
    cancel: Callable[[], None]
    progress: Callable[[], None]
    """Send a BOOKMARK event through the listener, after every event already handed to it."""


@dataclass(frozen=True)
class Page:
    """One page of a list: items as of `resource_version`; `continue_token` is "" on the last page."""

    items: list[Object]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


class _Stale(Exception):
    """The object changed between reading it and committing: the write starts again."""


# --- helpers --------------------------------------------------------------------------------------------------


def _namespace(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("namespace", ""))


def _name(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _rv(obj: Object) -> str:
    return str(obj["metadata"].get("resourceVersion", ""))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _served(obj: Object, rtype: ResourceType) -> Object:
    """The object as served at `rtype`'s version (CRD versions share storage; only apiVersion differs)."""
    return obj if obj.get("apiVersion") == rtype.api_version else {**obj, "apiVersion": rtype.api_version}


def _content(obj: Object, *, without_status: bool) -> Object:
    """What `metadata.generation` counts: the object without metadata (and without status)."""
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if without_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


def _same(a: Object, b: Object) -> bool:
    """Equal apart from resourceVersion: writing `b` over `a` would change nothing."""
    if a.keys() != b.keys() or any(a[k] != b[k] for k in a if k != "metadata"):
        return False
    meta_a, meta_b = a["metadata"], b["metadata"]
    keys = (meta_a.keys() | meta_b.keys()) - {"resourceVersion"}
    return all(meta_a.get(k) == meta_b.get(k) for k in keys)


def bookmark(rtype: ResourceType, resource_version: int, *, initial_events_end: bool = False) -> Object:
    """A BOOKMARK event's object: only type meta and the resourceVersion the watch has seen everything up to."""
    meta: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_events_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}


def _run_sync(coroutine: Coroutine[Any, Any, Object]) -> Object:
    """Drive a write that never waits (no admission, or synchronous admission) to its end without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a synchronous store call met asynchronous admission: use `await store.write(...)`")


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _encode_token(payload: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(payload, dict) or payload.get("v") != "meta.k8s.io/v1":
            raise ValueError("unknown version")
        int(payload["rv"])
        str(payload["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise bad_request(f"continue key is not valid: {err}") from None
    return payload


class Store:
    """Objects of the registered types, per resource, keyed by (namespace, name)."""

    def __init__(
        self,
        types: Iterable[ResourceType],
        *,
        crds: Iterable[Mapping[str, Any]] = (),
        log_size: int = DEFAULT_LOG_SIZE,
        namespaces: Iterable[str] = BUILTIN_NAMESPACES,
        persist_dir: str | Path | None = None,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
    ) -> None:
        """`types`: built-in kinds; `crds`: CustomResourceDefinitions installed at start (created, or updated
        when a restored state holds an older version); `persist_dir`: keep the state there across restarts,
        each write on disk before it returns (memory only without; `persist.DataDirError` when the directory
        cannot be used); `bookmark_interval`: how long a watch that allows bookmarks may stay silent."""
        self.registry = Registry(types)
        self.bookmark_interval = bookmark_interval
        self._lock = threading.RLock()
        self._data: dict[str, dict[tuple[str, str], Object]] = {}
        self._rv = 0
        self._log: deque[WatchEvent] = deque()
        self._log_size = log_size
        self._compacted = 0
        """Every event with a resourceVersion above this one is still in the log."""
        self._listeners: dict[tuple[str, str], dict[int, Listener]] = {}
        """(resource, name or "" for any) → the watches' listeners: a write calls only those it may concern."""
        self._listener_ids = itertools.count()
        self._snapshots: collections.OrderedDict[str, tuple[int, list[Object]]] = collections.OrderedDict()
        self._persister: persist.Persister | None = None
        if persist_dir is not None:
            self._persister = persist.Persister(Path(persist_dir))
            self._restore(self._persister.state)
        ns_type = self.registry.lookup("", "v1", "namespaces")
        if ns_type is not None:
            for ns in namespaces:
                if self._stored(ns_type, "", ns) is None:
                    self.create(ns_type, "", {"metadata": {"name": ns}})
        crd_type = self.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for crd in crds:
            if crd_type is None:
                for rtype in types_from_crd(crd):
                    self.registry.add(rtype)
            else:
                self._install(crd_type, crd)

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion: a list made now is consistent as of this version."""
        return self._rv

    # --- reads -------------------------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        """A private copy of one object (404 `StatusError` if missing)."""
        return copy.deepcopy(self.read(rtype, namespace, name))

    def read(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        """The stored object itself, shared: the caller must not change it (no copy: the server serialises it)."""
        obj = self._stored(rtype, namespace, name)
        if obj is None:
            raise errors.not_found(rtype.group_resource, name)
        return _served(obj, rtype)

    def list(self, rtype: ResourceType, namespace: str | None, match: Predicate) -> tuple[list[Object], int]:
        """Private copies of the matching objects, sorted by namespace and name (etcd key order), and the
        version they are as of."""
        page = self.list_page(rtype, namespace, match)
        return copy.deepcopy(page.items), page.resource_version

    def list_page(
        self, rtype: ResourceType, namespace: str | None, match: Predicate, *, limit: int = 0,
        continue_token: str = "",
    ) -> Page:
        """Up to `limit` (0: all) matching objects, shared (see `read`), after the position `continue_token`
        names. The first page of a paged list keeps a snapshot, so later pages are as of the same version."""
        if limit < 0:
            raise bad_request(f"invalid limit {limit}: must not be negative")
        snapshot: tuple[int, Objects] | None = None
        with self._lock:
            if continue_token:
                token = _decode_token(continue_token)
                rv, start = int(token["rv"]), str(token["start"])
                snapshot = self._snapshots.get(str(token.get("snapshot", "")))
                # Without its snapshot (too old), the list continues over current objects: inconsistent.
                items = snapshot[1] if snapshot is not None else self._matching(rtype, namespace, match)
                remaining = [o for o in items if f"{_namespace(o)}/{_name(o)}" > start]
            else:
                rv = self._rv
                remaining = self._matching(rtype, namespace, match)
            if not limit or len(remaining) <= limit:
                return Page([_served(o, rtype) for o in remaining], rv)
            page = remaining[:limit]
            if continue_token and snapshot is not None:
                snapshot_id = str(token["snapshot"])
            else:
                snapshot_id = secrets.token_hex(8)
                self._snapshots[snapshot_id] = (rv, remaining)
                while len(self._snapshots) > _SNAPSHOTS:
                    self._snapshots.popitem(last=False)
            last = page[-1]
            token_text = _encode_token({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{_namespace(last)}/{_name(last)}",
                                        "snapshot": snapshot_id})
            return Page([_served(o, rtype) for o in page], rv, token_text, len(remaining) - limit)

    def _matching(self, rtype: ResourceType, namespace: str | None, match: Predicate) -> Objects:
        bucket = self._data.get(rtype.group_resource, {})
        keys = sorted(k for k in bucket if not namespace or k[0] == namespace)
        return [obj for obj in (bucket[k] for k in keys) if match(obj)]

    # --- writes: synchronous forms (no admission) ---------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str, body: Any, *, dry_run: bool = False) -> Object:
        """POST: a private copy of the object as stored (decoded, defaulted, validated)."""
        return copy.deepcopy(self._write_sync(
            Write("create", rtype, namespace, body=copy.deepcopy(body), dry_run=dry_run)))

    def update(
        self, rtype: ResourceType, namespace: str, name: str, body: Any, *, subresource: str | None = None
    ) -> Object:
        """PUT: replace the object (or only its status, with subresource="status")."""
        return copy.deepcopy(self._write_sync(
            Write("update", rtype, namespace, name, copy.deepcopy(body), subresource)))

    def patch(
        self, rtype: ResourceType, namespace: str, name: str, content_type: str, patch: Any, *,
        subresource: str | None = None, field_manager: str = "",
    ) -> Object:
        """PATCH: apply the patch to the stored object, then update with what results. A resourceVersion in
        the patch is a precondition, as in kube-apiserver."""
        return copy.deepcopy(self._write_sync(Write(
            "patch", rtype, namespace, name, copy.deepcopy(patch), subresource, content_type,
            field_manager=field_manager)))

    def delete(self, rtype: ResourceType, namespace: str, name: str, options: Any = None) -> Object:
        """DELETE: gone at once, or terminating (deletionTimestamp set) while finalizers remain."""
        return copy.deepcopy(self._write_sync(Write("delete", rtype, namespace, name, options)))

    def _write_sync(self, request: Write) -> Object:
        """`write` without admission and without an event loop: blocks until the write is on disk."""
        obj = _run_sync(self._write(request, None))
        if self._persister is not None and not request.dry_run:
            try:
                self._persister.wait(self._rv)
            except persist.StorageError as err:
                raise _not_saved(err) from err
        return obj

    # --- writes: the pipeline -----------------------------------------------------------------------------------

    async def write(self, request: Write, admission: Admission | None = None) -> Object:
        """Run one write through decoding, admission, the strategy and validation, and commit it. Returns the
        object as stored (shared: do not change it), or a Status object for an eviction. With a state
        directory it returns once the write, and every one before it, is on disk (500 if that failed)."""
        obj = await self._write(request, admission)
        if self._persister is not None and not request.dry_run:
            committed = self._persister.durable(self._rv)
            if committed is not None:
                try:
                    await committed
                except persist.StorageError as err:
                    raise _not_saved(err) from err
        return obj

    async def _write(self, request: Write, admission: Admission | None) -> Object:
        self._check_options(request)
        warned = len(request.warnings)
        for _ in range(_RETRIES):
            del request.warnings[warned:]  # a retried write warns once, about its last attempt
            try:
                if request.verb == "create":
                    return await self._create(request, request.body, admission)
                if request.verb == "delete":
                    return await self._delete(request, admission)
                if request.verb == "evict":
                    return await self._evict(request, admission)
                if request.verb == "bind":
                    return self._bind(request)
                if request.verb in ("update", "patch"):
                    return await self._update(request, admission)
                raise ValueError(f"unknown write verb {request.verb!r}")
            except _Stale:
                continue
        raise errors.conflict(request.rtype.group_resource, request.name)

    def _check_options(self, request: Write) -> None:
        """PatchOptions/CreateOptions validation, as kube-apiserver answers it (422 on PatchOptions)."""
        apply = request.verb == "patch" and request.content_type == APPLY_PATCH
        causes = []
        if apply and not request.field_manager:
            causes.append({"reason": "FieldValueRequired", "field": "fieldManager",
                           "message": "Required value: is required for apply patch"})
        if not apply and request.force is not None:
            causes.append({"reason": "FieldValueForbidden", "field": "force",
                           "message": "Forbidden: may not be specified for non-apply patch"})
        if causes:
            raise errors.invalid_fields("PatchOptions", "meta.k8s.io", "", causes)
        if request.field_validation not in ("", "Ignore", "Warn", "Strict"):
            raise bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not '
                              f'"{request.field_validation}"')

    async def _create(self, request: Write, body: Any, admission: Admission | None) -> Object:
        rtype, namespace = request.rtype, request.namespace
        if rtype.namespaced and not namespace:
            raise bad_request(f"a {rtype.kind} is namespaced: create it in a namespace")
        with self._lock:
            self._check_namespace(rtype, namespace, _name(body) if isinstance(body, dict) else "")
        obj = self._decode(rtype, namespace, body, request)
        if request.name and not obj["metadata"].get("name"):
            obj["metadata"]["name"] = request.name  # server-side apply names the object in the URL
        if request.name and obj["metadata"]["name"] != request.name:
            raise bad_request(f"the name of the object ({obj['metadata']['name']}) does not match the name on the "
                              f"URL ({request.name})")
        obj = await self._mutate(admission, CREATE, request, obj, None)
        obj = self._prepare_create(rtype, obj)
        self._validate(rtype, obj, None)
        await self._admit(admission, CREATE, request, obj, None)
        request.created = True
        if request.dry_run:
            return obj
        return self._commit_create(rtype, obj)

    async def _update(self, request: Write, admission: Admission | None) -> Object:
        rtype, namespace, name = request.rtype, request.namespace, request.name
        old = self._stored(rtype, namespace, name)
        applying = request.verb == "patch" and request.content_type == APPLY_PATCH
        if old is None:
            if applying and not request.subresource:
                return await self._create(request, self._applied(request), admission)
            raise errors.not_found(rtype.group_resource, name)
        old_rv = _rv(old)
        old = _served(old, rtype)
        candidate = request.body if request.verb == "update" else self._patched(request, old)
        obj = self._decode(rtype, namespace, candidate, request)
        if not obj["metadata"].get("name"):
            obj["metadata"]["name"] = name
        if obj["metadata"]["name"] != name:
            raise bad_request(f"the name of the object ({obj['metadata']['name']}) does not match the name on the "
                              f"URL ({name})")
        precondition = str(obj["metadata"].get("resourceVersion") or "")
        if request.verb == "update" and not precondition and not rtype.unconditional_update:
            raise errors.invalid(rtype.kind, name, "metadata.resourceVersion",
                                 "Invalid value: 0x0: must be specified for an update", group=rtype.group)
        if precondition and precondition != old_rv:
            raise errors.conflict(rtype.group_resource, name)
        obj = await self._mutate(admission, UPDATE, request, obj, old)
        new = self._prepare_update(rtype, old, obj, request.subresource)
        self._validate(rtype, new, old)
        await self._admit(admission, UPDATE, request, new, old)
        if _same(old, new) or request.dry_run:
            return new if request.dry_run else old
        return self._commit_update(rtype, old_rv, new)

    async def _delete(self, request: Write, admission: Admission | None) -> Object:
        rtype, name = request.rtype, request.name
        old = self._stored(rtype, request.namespace, name)
        if old is None:
            raise errors.not_found(rtype.group_resource, name)
        options = request.body if isinstance(request.body, dict) else {}
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"].get("uid"):
            raise StatusError(409, "Conflict", f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": '
                                               f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                                               f"UID in object meta: {old['metadata'].get('uid')}", name=name)
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != _rv(old):
            raise StatusError(409, "Conflict", f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": '
                                               f"the ResourceVersion in the precondition "
                                               f"({preconditions['resourceVersion']}) does not match the "
                                               f"ResourceVersion in record ({_rv(old)}). The object might have "
                                               "been modified", name=name)
        if rtype.group_resource == "namespaces" and name in PROTECTED_NAMESPACES:
            raise errors.forbidden("namespaces", name, "this namespace may not be deleted")
        old = _served(old, rtype)
        await self._mutate(admission, DELETE, request, None, old)
        await self._admit(admission, DELETE, request, None, old)
        if request.dry_run or "All" in (options.get("dryRun") or ()):
            return old
        return self._commit_delete(rtype, _rv(old), old)

    async def _evict(self, request: Write, admission: Admission | None) -> Object:
        """POST pods/<name>/eviction: the pod is deleted (no disruption budgets here); a Status 201 answers."""
        rtype, name = request.rtype, request.name
        body = request.body if isinstance(request.body, dict) else {}
        if (body.get("metadata") or {}).get("name", name) != name:
            raise bad_request(f"name in URL does not match name in Eviction object: {name}")
        old = self._stored(rtype, request.namespace, name)
        if old is None:
            raise errors.not_found(rtype.group_resource, name)
        await self._mutate(admission, CREATE, request, copy.deepcopy(body), old)
        await self._admit(admission, CREATE, request, body, old)
        if not request.dry_run:
            self._commit_delete(rtype, _rv(old), old)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _bind(self, request: Write) -> Object:
        """POST pods/<name>/binding (a scheduler's): sets spec.nodeName once; a bound pod is a 409, as in
        kube-apiserver's BindingREST. A Status 201 answers."""
        rtype, name = request.rtype, request.name
        body = request.body if isinstance(request.body, dict) else {}
        target = body.get("target") if isinstance(body.get("target"), dict) else {}
        node = target.get("name") if isinstance(target.get("name"), str) else ""
        if (body.get("metadata") or {}).get("name", name) != name:
            raise bad_request(f"name in URL does not match name in Binding object: {name}")
        if not node or target.get("kind", "Node") != "Node":
            raise errors.invalid("Binding", name, "target.name", "Required value: a Node to bind to")
        old = self._stored(rtype, request.namespace, name)
        if old is None:
            raise errors.not_found(rtype.group_resource, name)
        bound = (old.get("spec") or {}).get("nodeName")
        if bound:
            raise StatusError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                                               f"is already assigned to node \"{bound}\"", name=name)
        if not request.dry_run:
            new = copy.deepcopy(_served(old, rtype))
            new["spec"]["nodeName"] = node
            conditions = [c for c in (new.get("status") or {}).get("conditions") or []
                          if c.get("type") != "PodScheduled"]
            new.setdefault("status", {})["conditions"] = [*conditions, {"type": "PodScheduled", "status": "True",
                                                                        "lastTransitionTime": _now()}]
            self._commit_update(rtype, _rv(old), new)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    async def _mutate(
        self, admission: Admission | None, operation: str, request: Write, obj: Object | None, old: Object | None
    ) -> Object:
        if admission is None:
            return obj  # type: ignore[return-value]
        attrs = self._attributes(operation, request, copy.deepcopy(obj), old)
        mutated = await _maybe_await(admission.mutate(attrs))
        if obj is None or mutated is None or mutated == obj:
            return obj  # type: ignore[return-value]
        if operation == CREATE and request.subresource:
            return obj
        return self._decode(request.rtype, request.namespace, mutated, request, warn=False)

    async def _admit(
        self, admission: Admission | None, operation: str, request: Write, obj: Object | None, old: Object | None
    ) -> None:
        if admission is not None:
            await _maybe_await(admission.validate(self._attributes(operation, request, copy.deepcopy(obj), old)))

    @staticmethod
    def _attributes(operation: str, request: Write, obj: Object | None, old: Object | None) -> AdmissionAttributes:
        name = request.name or (_name(obj) if obj else "")
        return AdmissionAttributes(operation, request.rtype, request.namespace, name, obj, old,
                                   request.subresource or "", request.dry_run, request.options,
                                   warnings=request.warnings)

    # --- decoding, strategy, validation -------------------------------------------------------------------------

    def _decode(self, rtype: ResourceType, namespace: str, body: Any, request: Write, *, warn: bool = True) -> Object:
        """The body typed for `rtype` (type meta checked and filled in, namespace set), built-in defaults
        applied and, for a custom resource, pruned and defaulted by its schema. A new top-level object and
        metadata; deeper values may be shared with `body`."""
        if not isinstance(body, dict):
            raise bad_request(f"the body of a {rtype.kind} must be a JSON object")
        for key, want in (("apiVersion", rtype.api_version), ("kind", rtype.kind)):
            got = body.get(key) or want
            if got != want:
                what = "API version" if key == "apiVersion" else "kind"
                raise bad_request(f"the {what} in the data ({got}) does not match the expected {what} ({want})")
        obj = {"apiVersion": rtype.api_version, "kind": rtype.kind,
               **{k: v for k, v in body.items() if k not in ("apiVersion", "kind")}}
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be a JSON object")
        meta = obj["metadata"] = dict(meta)
        if rtype.namespaced:
            if meta.get("namespace", namespace) not in (namespace, "", None):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rtype.defaults is not None:
            obj = rtype.defaults(obj)
        if rtype.schema is not None:
            pruned: list[str] | None = [] if warn and request.field_validation != "Ignore" else None
            obj = normalize(rtype.schema, obj, pruned)
            obj["metadata"] = dict(obj["metadata"])
            pruned = sorted(pruned) if pruned else pruned
            if pruned and request.field_validation == "Strict":
                unknown = ", ".join(f'unknown field "{p}"' for p in pruned)
                raise bad_request(f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                                  f"strict decoding error: {unknown}")
            if pruned:
                request.warnings.extend(f'unknown field "{p}"' for p in pruned)
        return obj

    def _prepare_create(self, rtype: ResourceType, obj: Object) -> Object:
        """The create strategy: name, server-owned metadata, status, generation, built-in create defaults."""
        meta = obj["metadata"]
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(rtype.kind, "", "metadata.name",
                                     "Required value: name or generateName is required", group=rtype.group,
                                     reason="FieldValueRequired")
            meta["name"] = meta["generateName"] + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789")
                                                          for _ in range(5))
        if rtype.status_dropped_on_create:
            obj.pop("status", None)
        for server_owned in ("resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
                             "managedFields"):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rtype.on_create is not None:
            obj = rtype.on_create(obj)
        if rtype.group_resource == CRD_RESOURCE:
            obj["status"] = _crd_status(obj)
        return obj

    def _prepare_update(self, rtype: ResourceType, old: Object, new: Object, subresource: str | None) -> Object:
        """The update strategy shared by PUT, PATCH and apply: what may change, and generation."""
        if subresource == "status":
            # Only status may change: everything else comes from the stored object.
            out = {k: v for k, v in old.items() if k != "status"}
            if "status" in new:
                out["status"] = new["status"]
            out["metadata"] = dict(old["metadata"])
            return out
        if rtype.status_subresource:
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        meta = new["metadata"]
        for kept in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp",
                     "deletionGracePeriodSeconds"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        meta["name"] = old["metadata"]["name"]
        if rtype.tracks_generation:
            without_status = rtype.status_subresource
            if _content(old, without_status=without_status) != _content(new, without_status=without_status):
                meta["generation"] = old["metadata"].get("generation", 0) + 1
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if rtype.group_resource == CRD_RESOURCE and not subresource:
            new["status"] = _crd_status(new, old.get("status"))
        return new

    def _validate(self, rtype: ResourceType, obj: Object, old: Object | None) -> None:
        """Metadata rules, the CRD schema (unchanged invalid fields of `old` are let through, as validation
        ratcheting does), and per-kind checks. 422 with every cause at once."""
        name = _name(obj)
        causes: list[dict[str, str]] = []
        if old is None:
            for problem in name_errors(rtype.name_rule, name):
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                               "message": f'Invalid value: "{name}": {problem}'})
        elif old["metadata"].get("deletionTimestamp"):
            added = [f for f in obj["metadata"].get("finalizers") or () if f not in
                     (old["metadata"].get("finalizers") or ())]
            if added:
                listed = ", ".join(json.dumps(f) for f in added)
                causes.append({"reason": "FieldValueForbidden", "field": "metadata.finalizers",
                               "message": "Forbidden: no new finalizers can be added if the object is being "
                                          f"deleted, found new finalizers []string{{{listed}}}"})
        if rtype.schema is not None:
            schema_causes = validate(rtype.schema, obj)
            if schema_causes and old is not None:
                before = {(c.field, c.message) for c in validate(rtype.schema, old)}
                schema_causes = [c for c in schema_causes if (c.field, c.message) not in before]
            causes.extend(c.as_status_cause() for c in schema_causes)
        if rtype.group_resource == CRD_RESOURCE:
            causes.extend({"reason": "FieldValueInvalid", "field": f, "message": m} for f, m in crd_problems(obj))
            causes.extend(self._crd_conflicts(obj))
        if causes:
            raise errors.invalid_fields(rtype.kind, rtype.group, name, causes)

    def _applied(self, request: Write) -> Object:
        """The applied configuration of a server-side apply (YAML or JSON), without what apply may not set."""
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if isinstance(body, str):  # the server parses it before; direct callers may pass the text
            try:
                body = yamlio.load_one(body, "the applied configuration")
            except ParseError as err:
                raise bad_request(f"error decoding YAML: {err}") from None
        if not isinstance(body, dict):
            raise bad_request("the applied configuration must be an object")
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("apply patch: the applied configuration must set apiVersion and kind")
        meta = body.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            body = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        return body

    def _patched(self, request: Write, old: Object) -> Any:
        """The stored object with the request's patch applied (before decoding)."""
        content_type, patch = request.content_type, request.body
        if content_type == JSON_PATCH:
            return json_patch(old, patch)
        if content_type == APPLY_PATCH:
            return merge_patch(old, self._applied(request))
        if content_type == MERGE_PATCH or (content_type == STRATEGIC_MERGE_PATCH and not request.rtype.custom):
            # Strategic merge is a JSON merge here: no list merge keys or $patch directives.
            if not isinstance(patch, dict):
                raise bad_request("merge patch body must be a JSON object")
            return merge_patch(old, patch)
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([] if request.rtype.custom else [STRATEGIC_MERGE_PATCH])
        raise errors.unsupported_media_type(content_type, accepted)

    # --- commits (under the lock) -------------------------------------------------------------------------------

    def _commit_create(self, rtype: ResourceType, obj: Object) -> Object:
        key = (_namespace(obj), _name(obj))
        with self._lock:
            self._check_namespace(rtype, key[0], key[1])
            if key in self._data.get(rtype.group_resource, {}):
                raise errors.already_exists(rtype.group_resource, key[1])
            self._emit(ADDED, rtype, obj, None)
            if rtype.group_resource == CRD_RESOURCE:
                self._serve_crd(obj)
        return obj

    def _commit_update(self, rtype: ResourceType, expected_rv: str, new: Object) -> Object:
        with self._lock:
            current = self._stored(rtype, _namespace(new), _name(new))
            if current is None:
                raise errors.not_found(rtype.group_resource, _name(new))
            if _rv(current) != expected_rv:
                raise _Stale()
            meta = new["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                if rtype.group_resource == CRD_RESOURCE:
                    self._unserve_crd(current)
                self._emit(DELETED, rtype, new, current)  # the last finalizer is gone: the object goes too
                self._after_delete(rtype, new)
                return new
            self._emit(MODIFIED, rtype, new, current)
            if rtype.group_resource == CRD_RESOURCE:
                self._serve_crd(new)
        return new

    def _commit_delete(self, rtype: ResourceType, expected_rv: str, old: Object) -> Object:
        with self._lock:
            current = self._stored(rtype, _namespace(old), _name(old))
            if current is None:
                raise errors.not_found(rtype.group_resource, _name(old))
            if _rv(current) != expected_rv:
                raise _Stale()
            return self._delete_now(rtype, current)

    def _delete_now(self, rtype: ResourceType, current: Object) -> Object:
        """Delete one stored object under the lock: terminating while finalizers remain, else gone."""
        meta = current["metadata"]
        if rtype.group_resource == "namespaces":
            return self._terminate_namespace(rtype, current)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return current
            terminating = {**current, "metadata": {**meta, "deletionTimestamp": _now(),
                                                   "deletionGracePeriodSeconds": 0}}
            self._emit(MODIFIED, rtype, terminating, current)
            return terminating
        if rtype.group_resource == CRD_RESOURCE:
            self._unserve_crd(current)
        gone = {**current, "metadata": dict(meta)}
        self._emit(DELETED, rtype, gone, current)
        self._after_delete(rtype, gone)
        return gone

    def _after_delete(self, rtype: ResourceType, gone: Object) -> None:
        namespace = _namespace(gone)
        if rtype.namespaced and namespace:
            self._finish_namespace(namespace)
        if rtype.group_resource == CRD_RESOURCE:
            self.registry.replace(_crd_resource(gone), [])

    def _emit(self, kind: str, rtype: ResourceType, obj: Object, old: Object | None) -> None:
        """Commit one change: a new resourceVersion, the state directory's queue, storage, the log, the
        listeners. When no resourceVersion can be reserved on disk, a 500 leaves everything as it was."""
        key = (_namespace(obj), _name(obj))
        obj["metadata"]["resourceVersion"] = str(self._rv + 1)
        if self._persister is not None:
            try:
                self._persister.record(rtype.group_resource, *key, None if kind == DELETED else obj, self._rv + 1)
            except persist.StorageError as err:
                raise _not_saved(err) from err
        self._rv += 1
        bucket = self._data.setdefault(rtype.group_resource, {})
        if kind == DELETED:
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        event = WatchEvent(kind, rtype, obj, self._rv, old if kind == MODIFIED else None)
        self._log.append(event)
        if len(self._log) > self._log_size:
            self._compacted = self._log.popleft().resource_version
        listeners = [*self._listeners.get((rtype.group_resource, ""), {}).values(),
                     *self._listeners.get((rtype.group_resource, key[1]), {}).values()]
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken watcher must not fail the write
                log.exception("watch listener failed on %s %s", kind, key[1])

    # --- namespaces ---------------------------------------------------------------------------------------------

    def _check_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        """A namespaced object needs its namespace, and one that is not being deleted."""
        if not rtype.namespaced or "namespaces" not in self._data:
            return
        ns = self._data["namespaces"].get(("", namespace))
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(rtype.group_resource, name, f"unable to create new content in namespace "
                                                               f"{namespace} because it is being terminated")

    def _terminate_namespace(self, ns_type: ResourceType, current: Object) -> Object:
        """What the namespace controller does, at once: mark it Terminating, delete its content (objects with
        finalizers stay terminating), and remove the namespace when nothing is left in it."""
        name = _name(current)
        if not current["metadata"].get("deletionTimestamp"):
            terminating = {**current, "metadata": {**current["metadata"], "deletionTimestamp": _now(),
                                                   "deletionGracePeriodSeconds": 0},
                           "status": {**(current.get("status") or {}), "phase": "Terminating"}}
            self._emit(MODIFIED, ns_type, terminating, current)
            for group_resource, bucket in list(self._data.items()):
                types = self.registry.of_resource(group_resource)
                if not types or not types[0].namespaced:
                    continue
                for key in [k for k in bucket if k[0] == name]:
                    if key in bucket:
                        self._delete_now(types[0], bucket[key])
        self._finish_namespace(name)
        return self._data["namespaces"].get(("", name), current)

    def _finish_namespace(self, namespace: str) -> None:
        ns = self._data.get("namespaces", {}).get(("", namespace))
        if ns is None or not ns["metadata"].get("deletionTimestamp") or ns["metadata"].get("finalizers"):
            return
        if any(k[0] == namespace for gr, bucket in self._data.items() if gr != "namespaces" for k in bucket):
            return
        ns_type = self.registry.lookup("", "v1", "namespaces")
        if ns_type is not None:
            gone = {**ns, "metadata": dict(ns["metadata"]), "spec": {**(ns.get("spec") or {}), "finalizers": []}}
            self._emit(DELETED, ns_type, gone, ns)

    # --- CRDs ---------------------------------------------------------------------------------------------------

    def _install(self, crd_type: ResourceType, crd: Mapping[str, Any]) -> None:
        """Create a CRD given at start, or bring a restored one up to date with it."""
        name = crd["metadata"]["name"]
        current = self._stored(crd_type, "", name)
        if current is None:
            self.create(crd_type, "", crd)
        elif current.get("spec") != crd.get("spec"):
            self.update(crd_type, "", name, {**copy.deepcopy(dict(crd)), "metadata": {
                **copy.deepcopy(crd["metadata"]), "resourceVersion": _rv(current)}})

    def _crd_conflicts(self, crd: Object) -> Objects:
        """A CRD may not take over a built-in resource."""
        spec = crd.get("spec") or {}
        out = []
        for version in spec.get("versions") or ():
            served = self.registry.lookup(spec.get("group", ""), version.get("name", ""),
                                          (spec.get("names") or {}).get("plural", ""))
            if served is not None and served.crd is None:
                out.append({"reason": "FieldValueInvalid", "field": "spec.names.plural",
                            "message": f'Invalid value: "{served.plural}": {served.group_resource} is built in'})
        return out

    def _serve_crd(self, crd: Object) -> None:
        """Serve the CRD's resource as it now reads, and default stored objects by its (maybe new) schema, as
        kube-apiserver defaults objects read from storage."""
        types = types_from_crd(crd)
        group_resource = _crd_resource(crd)
        self.registry.replace(group_resource, types)
        bucket = self._data.get(group_resource)
        if not bucket or not types or types[0].schema is None:
            return
        by_version = {t.api_version: t for t in types}
        for key, obj in list(bucket.items()):
            rtype = by_version.get(obj.get("apiVersion", ""), types[0])
            if rtype.schema is not None:
                fresh = normalize(rtype.schema, obj)
                if fresh != obj:
                    bucket[key] = fresh

    def _unserve_crd(self, crd: Object) -> None:
        """Delete every object of the CRD's resource (DELETED events, finalizers ignored), before the CRD."""
        group_resource = _crd_resource(crd)
        types = self.registry.of_resource(group_resource)
        for obj in list(self._data.get(group_resource, {}).values()):
            if types:
                self._emit(DELETED, types[0], {**obj, "metadata": dict(obj["metadata"])}, obj)
        self._data.pop(group_resource, None)

    # --- watch -------------------------------------------------------------------------------------------------

    def watch(
        self, rtype: ResourceType, namespace: str | None, resource_version: str | None, match: Predicate,
        listener: Listener, *, initial_events: bool = False, name: str = "",
    ) -> Watch:
        """Replay what a watch from `resource_version` missed, and subscribe `listener` to what comes next,
        atomically. No version (or "0") starts with a synthetic ADDED per existing object, as the real server
        does; `initial_events` (sendInitialEvents) does too, then a BOOKMARK marked initial-events-end. A
        version older than the log is a 410 `StatusError`. `name`: the watch selects only that object (a
        `metadata.name=` field selector; `match` must say so too); writes to other objects then skip it."""
        with self._lock:
            if initial_events or resource_version in (None, "", "0"):
                backlog = [WatchEvent(ADDED, rtype, obj, int(_rv(obj)))
                           for obj in self.list_page(rtype, namespace, match).items]
                if initial_events:
                    backlog.append(WatchEvent(BOOKMARK, rtype, bookmark(rtype, self._rv, initial_events_end=True),
                                              self._rv))
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
            slot = (rtype.group_resource, name)
            self._listeners.setdefault(slot, {})[ident] = deliver

        def cancel() -> None:
            with self._lock:
                listeners = self._listeners.get(slot, {})
                listeners.pop(ident, None)
                if not listeners:
                    self._listeners.pop(slot, None)

        def progress() -> None:
            with self._lock:
                if ident in self._listeners.get(slot, {}):
                    listener(WatchEvent(BOOKMARK, rtype, bookmark(rtype, self._rv), self._rv))

        return Watch(backlog, cancel, progress)

    def compact(self, keep_last: int = 0) -> None:
        """Forget all but the newest `keep_last` events, as etcd compaction does: a watch from an older
        resourceVersion then gets 410 and must re-list."""
        with self._lock:
            while len(self._log) > keep_last:
                self._log.popleft()
            self._compacted = self._log[0].resource_version - 1 if self._log else self._rv

    # --- persistence --------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Wait until every write so far is on disk (no-op without a state directory)."""
        if self._persister is not None:
            self._persister.wait(self._rv)

    def close(self) -> None:
        """Commit what is queued and let go of the state directory, as a clean shutdown does. The store stays
        usable (a later write takes the directory again)."""
        if self._persister is not None:
            self._persister.close()

    def _restore(self, state: Mapping[str, Any]) -> None:
        """Load a snapshot: CRDs first (they define the types), then every object, defaulted as read."""
        resources: Mapping[str, Objects] = state.get("resources") or {}
        for crd in resources.get(CRD_RESOURCE, []):
            try:
                self.registry.replace(_crd_resource(crd), types_from_crd(crd))
            except (ValueError, KeyError) as err:
                log.warning("restored CRD %s cannot be served (%s); its objects are dropped", _name(crd), err)
        for group_resource, objects in resources.items():
            types = self.registry.of_resource(group_resource)
            if not types:
                log.warning("restored %d %s of a resource no longer served: dropped", len(objects), group_resource)
                continue
            by_version = {t.api_version: t for t in types}
            bucket = self._data.setdefault(group_resource, {})
            for obj in objects:
                rtype = by_version.get(obj.get("apiVersion", ""), types[0])
                if rtype.schema is not None:
                    obj = normalize(rtype.schema, obj)
                bucket[(_namespace(obj), _name(obj))] = obj
        self._rv = int(state.get("resourceVersion", 0))
        self._compacted = self._rv

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

    def _stored(self, rtype: ResourceType, namespace: str, name: str) -> Object | None:
        return self._data.get(rtype.group_resource, {}).get((namespace if rtype.namespaced else "", name))


def _not_saved(err: persist.StorageError) -> StatusError:
    """A write the state directory could not take: 500, as kube-apiserver answers when etcd fails one."""
    return StatusError(500, "InternalError", f"Internal error occurred: {err}")


def _crd_resource(crd: Mapping[str, Any]) -> str:
    spec = crd.get("spec") or {}
    return f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"


def _crd_status(crd: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the apiextensions controllers report once a CRD is served: names accepted, Established, the
    storage versions ever used. Conditions keep their transition times while they hold."""
    spec = crd.get("spec") or {}
    previous = previous or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = [v["name"] for v in spec.get("versions") or () if v.get("storage")]
    conditions = previous.get("conditions")
    if not conditions:
        now = _now()
        conditions = [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ]
    return {
        "acceptedNames": names,
        "conditions": conditions,
        "storedVersions": list(dict.fromkeys([*(previous.get("storedVersions") or ()), *stored])),
    }
