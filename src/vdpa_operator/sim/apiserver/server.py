"""The HTTP face of the store: kube-apiserver's URL layout, discovery, JSON bodies, watch streams.

Handlers only translate: a URL becomes a `Target` (type, namespace, name, subresource), a request becomes one
store call, a `StatusError` becomes a `Status` body. Behaviour lives in the store. Every request first passes
`_guard`: authentication (authn.py, 401 without a valid bearer token) and RBAC (rbac.py, 403), as
kube-apiserver's filter chain does before routing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from vdpa_operator import bounded, yamlio
from vdpa_operator.sim.apiserver import errors, openapi, protobuf, proxy, tables, webhooks
from vdpa_operator.sim.apiserver.authn import Authenticator, UserInfo
from vdpa_operator.sim.apiserver.credentials import Credentials
from vdpa_operator.sim.apiserver.errors import StatusError, bad_request
from vdpa_operator.sim.apiserver.kubeconfigs import CONTEXT, kubeconfig
from vdpa_operator.sim.apiserver.patch import APPLY_PATCH
from vdpa_operator.sim.apiserver.rbac import Authorizer, Denial, request_attributes
from vdpa_operator.sim.apiserver.resources import Registry, ResourceType
from vdpa_operator.sim.apiserver.selectors import both, field_selector, label_selector, selected_name
from vdpa_operator.sim.apiserver.store import BOOKMARK, Store, WatchEvent, Write
from vdpa_operator.sim.apiserver.watchstream import Line, Outbox, Streams, WatchBudget, encode, send

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
STREAMS = web.AppKey("streams", Streams)
WEBHOOKS = web.AppKey("webhooks", webhooks.Webhooks)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
AUTHORIZER = web.AppKey("authorizer", Authorizer)
USER = web.RequestKey("user", UserInfo)
"""Request key: who the request authenticated as."""
WARNINGS = web.RequestKey("warnings", list[str])
"""Request key: the warnings a request collected (admission webhooks), sent as `Warning: 299` headers."""

MAX_REQUEST_BODY = 3 * bounded.MiB
"""kube-apiserver's MaxRequestBodyBytes: a larger body is refused unread, 413 RequestEntityTooLarge."""
BODY_LIMITS = bounded.Limits(max_bytes=MAX_REQUEST_BODY)
DEFAULT_WATCH_TIMEOUT = 1800
"""kube-apiserver ends a watch after --min-request-timeout (1800 s) when the client sets no timeoutSeconds."""
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+vdpa-sim",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z",
    "goVersion": "python",
    "compiler": "vdpa-operator",
    "platform": "linux/amd64",
}


def _json(body: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", no charset: lightkube only decodes a Status from that content type.
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def _error(err: StatusError) -> web.Response:
    return _json(err.status(), err.code)


def _no_such_path() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource")


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rtype: ResourceType
    namespace: str | None
    """None for a cluster-scoped type, or a namespaced collection across all namespaces."""
    name: str | None
    subresource: str | None


def resolve(registry: Registry, group: str, version: str, tail: str) -> Target:
    """`[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]` under a group/version; 404 when nothing is there.

    `namespaces/<x>/<y>` is ambiguous: it is a namespaced collection when <y> is a namespaced type of this
    group/version, else the Namespace <x>'s subresource <y>.
    """
    parts = [p for p in tail.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        inner = registry.lookup(group, version, parts[2])
        if inner is not None and inner.namespaced:
            namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise _no_such_path()
    rtype = registry.lookup(group, version, parts[0])
    if rtype is None:
        raise _no_such_path()
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else None
    if rtype.namespaced and namespace is None and name is not None:
        raise _no_such_path()
    if subresource is not None and not ((subresource == "status" and rtype.status_subresource)
                                        or subresource in rtype.subresources):
        raise _no_such_path()
    return Target(rtype, namespace, name, subresource)


# --- discovery ------------------------------------------------------------------------------------------------


_SUBRESOURCE_KINDS = {"eviction": ("policy", "v1", "Eviction"), "binding": ("", "v1", "Binding"),
                      "token": ("authentication.k8s.io", "v1", "TokenRequest")}
"""The create-only subresources served, and the kind each takes."""


def _resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rtype in registry.in_group_version(group, version):
        entry: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": rtype.verbs,
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        for subresource in rtype.subresources:
            sub_group, sub_version, sub_kind = _SUBRESOURCE_KINDS[subresource]
            resources.append({"name": f"{rtype.plural}/{subresource}", "singularName": "",
                              "namespaced": rtype.namespaced, "group": sub_group, "version": sub_version,
                              "kind": sub_kind, "verbs": ["create"]})
        if rtype.status_subresource:
            resources.append({
                "name": f"{rtype.plural}/status",
                "singularName": "",
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": ["get", "patch", "update"],
            })
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": _gv(group, version), "resources": resources}


def _gv(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": _gv(group, v), "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


async def _version(request: web.Request) -> web.Response:
    return _json(VERSION)


async def _health(request: web.Request) -> web.Response:
    """/healthz, /livez, /readyz: the server answers, so it is."""
    return web.Response(text="ok")


async def _core_versions(request: web.Request) -> web.Response:
    return _json({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
    })


async def _groups(request: web.Request) -> web.Response:
    groups = request.app[STORE].registry.group_versions()
    listed = [_api_group(g, vs) for g, vs in groups.items() if g]
    return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": listed})


async def _group(request: web.Request) -> web.Response:
    versions = request.app[STORE].registry.group_versions().get(request.match_info["group"])
    if not versions:
        return _error(_no_such_path())
    return _json({"kind": "APIGroup", "apiVersion": "v1", **_api_group(request.match_info["group"], versions)})


async def _core_resources(request: web.Request) -> web.Response:
    return _json(_resource_list(request.app[STORE].registry, "", "v1"))


async def _group_resources(request: web.Request) -> web.Response:
    group, version = request.match_info["group"], request.match_info["version"]
    registry = request.app[STORE].registry
    if not registry.in_group_version(group, version):
        return _error(_no_such_path())
    return _json(_resource_list(registry, group, version))


async def _openapi_v3(request: web.Request) -> web.Response:
    return _json(openapi.discovery(request.app[STORE].registry))


async def _openapi_v3_group_version(request: web.Request) -> web.Response:
    parts = request.match_info["tail"].split("/")
    group, version = (parts[1], parts[2]) if parts[0] == "apis" and len(parts) == 3 else ("", parts[-1])
    if parts[0] == "api" and len(parts) != 2:
        return _error(_no_such_path())
    document = openapi.group_version_document(request.app[STORE].registry, group, version)
    return _error(_no_such_path()) if document is None else _json(document)


# --- resources ------------------------------------------------------------------------------------------------


def _too_large() -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_REQUEST_BODY}")


async def _read_body(request: web.Request) -> bytes:
    """The body, or 413 when it is over `MAX_REQUEST_BODY` (said by Content-Length, or found while reading)."""
    if request.content_length is not None and request.content_length > MAX_REQUEST_BODY:
        raise _too_large()
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None


async def _body(request: web.Request) -> Any:
    raw = await _read_body(request)
    if request.content_type == protobuf.CONTENT_TYPE:  # client-go's typed clients (kubectl create namespace)
        return protobuf.decode(raw)
    try:
        return bounded.loads_json(raw, "the request body", BODY_LIMITS)
    except bounded.ParseError as err:
        raise bad_request(str(err)) from None


async def _applied_configuration(request: web.Request) -> Any:
    """A server-side apply body (YAML or JSON), parsed on a worker thread: a large YAML body takes PyYAML a
    while, and the server keeps answering others meanwhile."""
    raw = await _read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("error decoding YAML: the applied configuration is not UTF-8 text") from None
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, yamlio.load_one, text, "the applied configuration", BODY_LIMITS)
    except bounded.ParseError as err:
        raise bad_request(f"error decoding YAML: {err}") from None


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "").lower() in ("true", "1")


async def _resources(request: web.Request) -> web.StreamResponse:
    """Every request under /api/v1/… and /apis/<group>/<version>/…."""
    store = request.app[STORE]
    group = request.match_info.get("group", "")
    version = request.match_info.get("version", "v1")
    try:
        target = resolve(store.registry, group, version, request.match_info["tail"])
        if request.method == "GET" and target.name is None and _is_watch(request):
            return await _watch(request, store, target)
        request[WARNINGS] = []
        return _with_warnings(await _dispatch(request, store, target), request[WARNINGS])
    except StatusError as err:
        return _with_warnings(_error(err), request.get(WARNINGS, []))
    except Exception as err:  # a bug here must still answer like an API server, and say what broke
        log.exception("%s %s failed", request.method, request.path)
        return _error(StatusError(500, "InternalError", f"an error on the server ({err!r}) has prevented the request"))


def _with_warnings(response: web.Response, warnings: list[str]) -> web.Response:
    for text in warnings:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{quoted}"')
    return response


def _view(request: web.Request, rtype: ResourceType, items: list[dict[str, Any]], rv: str, *, listing: bool,
          list_meta: dict[str, Any] | None = None) -> web.Response | None:
    """The Table / PartialObjectMetadata form `kubectl get` asks for in its Accept header (tables.py).
    `list_meta`: a paged list's metadata (continue, remainingItemCount), kept on the table."""
    view = tables.negotiate(request.headers.get("Accept", ""), listing=listing)
    if view is None:
        return None
    if view.kind == tables.TABLE:
        body = tables.table(rtype, items, rv, view=view, include_object=request.query.get("includeObject", ""))
    elif listing:
        body = tables.partial_list(items, rv, view.version)
    else:
        return _json(tables.partial(items[0], view.version))
    if list_meta:
        body["metadata"] = {**body.get("metadata", {}), **list_meta}
    return _json(body)


async def _dispatch(request: web.Request, store: Store, t: Target) -> web.Response:
    ns = t.namespace or ""
    method = request.method
    if t.name is None:
        if method == "GET":
            return _list(request, store, t)
        if method == "POST" and (t.namespace is not None or not t.rtype.namespaced):
            return _json(*await _write(request, store, t, "create"))
        raise errors.method_not_allowed(f"{method} is not supported on the {t.rtype.group_resource} collection here")
    if method == "GET" and t.subresource in (None, "status"):
        obj = store.read(t.rtype, ns, t.name)
        viewed = _view(request, t.rtype, [obj], obj["metadata"].get("resourceVersion", ""), listing=False)
        return viewed if viewed is not None else _json(obj)
    if method == "PUT" and t.subresource in (None, "status"):
        return _json(*await _write(request, store, t, "update"))
    if method == "PATCH" and t.subresource in (None, "status"):
        if request.content_type == APPLY_PATCH:
            _authorize_create_by_apply(request, store, t)
        return _json(*await _write(request, store, t, "patch"))
    if method == "DELETE" and t.subresource is None:
        return _json(*await _write(request, store, t, "delete"))
    if method == "POST" and t.subresource == "eviction":
        return _json(*await _write(request, store, t, "evict"))
    if method == "POST" and t.subresource == "binding":
        return _json(*await _write(request, store, t, "bind"))
    if method == "POST" and t.subresource == "token":
        return _json(request.app[AUTHENTICATOR].token_request(ns, t.name, await _body(request)), 201)
    raise errors.method_not_allowed(f"{method} is not supported on {t.rtype.group_resource} {t.name!r}")


def _authorize_create_by_apply(request: web.Request, store: Store, t: Target) -> None:
    """A server-side apply that would create the object needs `create` too, as kube-apiserver checks."""
    try:
        store.read(t.rtype, t.namespace or "", t.name or "")
    except StatusError as err:
        if err.code != 404:
            raise
        attributes = request_attributes(request.method, request.path, request.query)
        request.app[AUTHORIZER].check(request[USER], dataclasses.replace(attributes, verb="create"))


def _list(request: web.Request, store: Store, t: Target) -> web.Response:
    """A list, paged with `limit`/`continue` (kubectl asks for 500 at a time) over a consistent snapshot.
    `remainingItemCount` is only known without selectors, as in kube-apiserver."""
    query = request.query
    selected = bool(query.get("labelSelector") or query.get("fieldSelector"))
    match = both(label_selector(query.get("labelSelector")),
                 field_selector(query.get("fieldSelector"), t.rtype.field_labels))
    try:
        limit = int(query.get("limit") or 0)
    except ValueError:
        raise bad_request(f"invalid limit {query.get('limit')!r}") from None
    page = store.list_page(t.rtype, t.namespace, match, limit=limit, continue_token=query.get("continue", ""))
    rv = str(page.resource_version)
    meta: dict[str, Any] = {"resourceVersion": rv}
    if page.continue_token:
        meta["continue"] = page.continue_token
        if not selected and page.remaining is not None:
            meta["remainingItemCount"] = page.remaining
    if (viewed := _view(request, t.rtype, page.items, rv, listing=True, list_meta=meta)) is not None:
        return viewed
    items = page.items
    if not t.rtype.custom:  # core lists carry the kind once, not per item
        items = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in items]
    return _json({"apiVersion": t.rtype.api_version, "kind": f"{t.rtype.kind}List", "metadata": meta,
                  "items": items})


_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions",
                 "delete": "DeleteOptions", "evict": "CreateOptions",
                 "bind": "CreateOptions"}


async def _write(request: web.Request, store: Store, t: Target, verb: str) -> tuple[dict[str, Any], int]:
    """One write through `Store.write` (decode, admission, strategy, validation, commit): the object and the
    status code (201 when it created the object). Admission is the webhooks (webhooks.py), when configured."""
    query = request.query
    dry_run = query.getall("dryRun", [])
    if any(value != "All" for value in dry_run):
        raise bad_request(f'dryRun: Unsupported value: {dry_run}: supported values: "All"')
    force = query.get("force")
    if request.content_type == APPLY_PATCH:
        body: Any = await _applied_configuration(request)
    elif verb == "delete":
        body = await _body(request) if request.can_read_body else None
    else:
        body = await _body(request)
    options: dict[str, Any] = {"kind": _OPTIONS_KIND[verb], "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = dry_run
    if query.get("fieldManager"):
        options["fieldManager"] = query["fieldManager"]
    write = Write(verb, t.rtype, t.namespace or "", t.name or "", body, t.subresource, request.content_type,
                  dry_run=bool(dry_run), field_manager=query.get("fieldManager", ""),
                  force=None if force is None else force.lower() in ("true", "1"),
                  field_validation=query.get("fieldValidation", ""), options=options, warnings=request[WARNINGS])
    hooks = request.app[WEBHOOKS]
    obj = await store.write(write, hooks if hooks.configured() else None)
    return obj, 201 if write.created or verb in ("evict", "bind") else 200


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


async def _watch(request: web.Request, store: Store, t: Target) -> web.StreamResponse:
    """Newline-delimited watch events until timeoutSeconds, the client leaving, or server shutdown.

    A too-old resourceVersion is not an HTTP error: like kube-apiserver, the stream opens and carries one
    ERROR event whose object is a 410 Status. With `allowWatchBookmarks`, a BOOKMARK (only type meta and the
    resourceVersion seen so far) follows every `store.bookmark_interval` seconds of silence, and one more just
    before the server ends the watch at timeoutSeconds. `sendInitialEvents=true` (with
    resourceVersionMatch=NotOlderThan) starts with an ADDED per current object, then a BOOKMARK annotated
    `k8s.io/initial-events-end: "true"`.
    """
    query = request.query
    match = both(label_selector(query.get("labelSelector")),
                 field_selector(query.get("fieldSelector"), t.rtype.field_labels))
    try:
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
    except ValueError:
        raise bad_request(f"invalid timeoutSeconds {query.get('timeoutSeconds')!r}") from None
    bookmarks, initial_events = _flag(query, "allowWatchBookmarks"), _flag(query, "sendInitialEvents")
    if "sendInitialEvents" in query:
        causes = []
        if query.get("resourceVersionMatch") != "NotOlderThan":
            causes.append({"reason": "FieldValueForbidden", "field": "resourceVersionMatch",
                           "message": "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                                      "NotOlderThan"})
        if not bookmarks:
            causes.append({"reason": "FieldValueForbidden", "field": "allowWatchBookmarks",
                           "message": "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"})
        if causes:
            raise errors.invalid_fields("ListOptions", "meta.k8s.io", "", causes)
    view = tables.negotiate(request.headers.get("Accept", ""), listing=True)
    if view is not None and view.kind != tables.TABLE:
        raise StatusError(406, "NotAcceptable", f"a watch cannot be served as {view.kind}")
    headers_sent = False
    streams = request.app[STREAMS]
    outbox = streams.open(request.transport)

    def line_of(event: WatchEvent) -> Line:
        """The event's shared encoding; for kubectl's Table view, this watch's own row (column definitions in the
        first only)."""
        nonlocal headers_sent
        if view is None or event.type in ("ERROR", "BOOKMARK"):
            return streams.shared_line(event.type, event.object)
        rv = event.object.get("metadata", {}).get("resourceVersion", "")
        table = tables.table(t.rtype, [event.object], rv, view=view, include_object=query.get("includeObject", ""),
                             headers=not headers_sent)
        headers_sent = True
        return Line(event.type, encode(event.type, table))

    def deliver(event: WatchEvent) -> None:  # on the server's loop
        outbox.put(line_of(event))

    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def listener(event: WatchEvent) -> None:
        # Through the loop's callback queue either way, so events keep their order; only a write from another
        # thread needs to wake the loop.
        if threading.get_ident() == loop_thread:
            loop.call_soon(deliver, event)
        else:
            loop.call_soon_threadsafe(deliver, event)

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    chunk = streams.budget.write_chunk
    try:
        watch = store.watch(t.rtype, t.namespace, query.get("resourceVersion"), match, listener,
                            initial_events=initial_events, name=selected_name(query.get("fieldSelector")))
    except StatusError as err:
        outbox.discard()
        if err.code != 410:
            raise
        await response.prepare(request)
        await response.write(encode("ERROR", err.status()))
        await response.write_eof()
        return response

    try:
        await response.prepare(request)
        await _write_initial(response, outbox, (line_of(event) for event in watch.backlog), chunk)
        deadline = loop.time() + timeout
        quiet_since = loop.time()
        closing = False
        while True:
            now = loop.time()
            if now >= deadline and not closing:
                if not bookmarks:
                    break
                closing = True  # a last BOOKMARK, after every event already queued for this watch
                watch.progress()
            if closing:
                wait = 1.0
            elif bookmarks:
                wait = min(deadline, quiet_since + store.bookmark_interval) - now
            else:
                wait = deadline - now
            try:
                item = await outbox.next(wait)
            except TimeoutError:
                if closing:
                    break
                if bookmarks and loop.time() - quiet_since >= store.bookmark_interval:
                    watch.progress()
                    quiet_since = loop.time()
                continue
            if item is None:  # ended (end_watches, shutdown) or closed for falling behind
                break
            await send(response, item.data, chunk)
            outbox.sent()
            quiet_since = loop.time()
            if closing and item.kind == BOOKMARK:
                break
            del item  # not kept alive by this frame while it waits for the next
        await response.write_eof()
    except (ConnectionError, RuntimeError) as err:  # the client went away mid-stream, or the watch was cut off
        log.debug("watch of %s ended: %s", t.rtype.group_resource, err)
    finally:
        watch.cancel()
        outbox.discard()
        if outbox.closed:
            log.info("watch of %s closed: its client fell behind by more than the watch budget allows",
                     t.rtype.group_resource)
    return response


async def _write_initial(response: web.StreamResponse, outbox: Outbox, lines: Iterator[Line], chunk: int) -> None:
    """The events a watch starts with, ahead of its queue, each counted in the budget while it is written
    (a function of its own, so no line outlives its writing in a local)."""
    for line in lines:
        if not outbox.begin(line):
            return
        await send(response, line.data, chunk)
        outbox.sent()


def end_watches(app: web.Application) -> None:
    """End every open watch stream cleanly, as a server-side timeout does; call on the server's loop."""
    app[STREAMS].end_all()


async def _close_store(app: web.Application) -> None:
    """A clean shutdown writes the state directory (store.close() waits for the writer thread)."""
    app[AUTHORIZER].close()
    await asyncio.get_running_loop().run_in_executor(None, app[STORE].close)


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Authenticate, then authorize, before anything is routed or read (kube's filter order): 401 without a valid
    bearer token, 403 when RBAC allows nothing of the kind."""
    app = request.app
    try:
        user = app[AUTHENTICATOR].authenticate(request.headers.get("Authorization"))
    except StatusError as err:
        app[AUTHORIZER].record(Denial(err.code, "", None, f"{request.method} {request.path}: {err.message}"))
        return _error(err)
    try:
        app[AUTHORIZER].check(user, request_attributes(request.method, request.path, request.query))
    except StatusError as err:
        return _error(err)
    request[USER] = user
    response: web.StreamResponse = await handler(request)
    return response


async def _end_watches_on_shutdown(app: web.Application) -> None:
    """Without this, shutdown waits for open watches to reach their timeouts."""
    end_watches(app)


def make_app(store: Store, webhook_services: Mapping[tuple[str, str], str] | None = None,
             credentials: Credentials | None = None, watch_budget: WatchBudget | None = None) -> web.Application:
    """The aiohttp application serving `store`. `webhook_services`: where admission webhooks given as a
    `clientConfig.service` listen, (namespace, name) → "host:port" (default 127.0.0.1 and the service port).
    `credentials`: the admin token and token-signing key (default: new ones, valid as long as the app).
    `watch_budget`: the memory open watches may hold (default `WatchBudget()`)."""
    app = web.Application(client_max_size=MAX_REQUEST_BODY, middlewares=[_guard])
    app[STORE] = store
    credentials = credentials or Credentials.generate()
    app[AUTHENTICATOR] = Authenticator(store, credentials)
    app[AUTHORIZER] = Authorizer(store)
    app[STREAMS] = Streams(watch_budget or WatchBudget())
    app[WEBHOOKS] = webhooks.Webhooks(store, webhook_services)
    routes = app.router
    routes.add_get("/version", _version)
    for path in ("/healthz", "/livez", "/readyz"):
        routes.add_get(path, _health)
    for path in ("/api", "/api/"):
        routes.add_get(path, _core_versions)
    for path in ("/apis", "/apis/"):
        routes.add_get(path, _groups)
    routes.add_get("/api/v1", _core_resources)
    routes.add_get("/apis/{group}", _group)
    routes.add_get("/apis/{group}/{version}", _group_resources)
    routes.add_get("/openapi/v3", _openapi_v3)
    routes.add_get("/openapi/v3/{tail:.+}", _openapi_v3_group_version)
    proxy.setup(app, store, credentials)  # pods/exec and pods/log, ahead of the resource routes
    routes.add_route("*", "/api/v1/{tail:.+}", _resources)
    routes.add_route("*", "/apis/{group}/{version}/{tail:.+}", _resources)
    app.on_shutdown.append(_end_watches_on_shutdown)
    app.on_cleanup.append(_close_store)
    return app


@dataclass
class RunningServer:
    """A started server: where it listens, who it trusts, and how to stop it (on its own loop)."""

    runner: web.AppRunner
    host: str
    port: int
    credentials: Credentials
    tls: bool = True

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (the loopback address for a wildcard bind)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def authenticator(self) -> Authenticator:
        """Mints ServiceAccount tokens (`issue`)."""
        return self.runner.app[AUTHENTICATOR]

    @property
    def authorizer(self) -> Authorizer:
        """RBAC, and the requests it refused (`denials`)."""
        return self.runner.app[AUTHORIZER]

    @property
    def kubelet_token(self) -> str:
        """What this server shows kubelets when it proxies exec and logs (give it to each kubelet)."""
        return proxy.kubelet_client_token(self.credentials)

    def kubeconfig(self, token: str | None = None, namespace: str = "default", *,
                   user: str = CONTEXT) -> dict[str, Any]:
        """A kubeconfig for this server that trusts its CA and authenticates with `token` (default: the admin's)."""
        return kubeconfig(self.url, token or self.credentials.admin_token, namespace, user=user,
                          ca_bundle=self.credentials.ca.bundle if self.tls else None)

    def end_watches(self) -> None:
        """End open watch streams (clients re-watch from their last version); call on the server's loop."""
        end_watches(self.runner.app)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(
    store: Store, host: str = "127.0.0.1", port: int = 0, *, tls: bool = True,
    webhook_services: Mapping[tuple[str, str], str] | None = None, credentials: Credentials | None = None,
    watch_budget: WatchBudget | None = None,
) -> RunningServer:
    """Serve `store` on host:port (0: a free port) in the running loop, over HTTPS with a certificate from the
    credentials' CA unless `tls` is False (kubectl then sends no token: fit for other clients only).
    `credentials`: the admin token, token-signing key and CA (default: new ones, for as long as the server).
    `watch_budget`: the memory open watches may hold (default `WatchBudget()`)."""
    credentials = credentials or Credentials.generate()
    runner = web.AppRunner(make_app(store, webhook_services, credentials, watch_budget), access_log=None,
                           handler_cancellation=True, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=credentials.serving_context(host) if tls else None)
    await site.start()
    bound = runner.addresses[0][1]
    return RunningServer(runner, host, bound, credentials, tls)
