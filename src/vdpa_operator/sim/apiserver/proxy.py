"""`pods/exec` and `pods/log`: checked here as kube-apiserver checks them, then proxied to the kubelet of the
pod's node, as kube-apiserver proxies them to port 10250.

- Before anything reaches a kubelet: the pod (404), its container (the one named, or the only one; 400 with the
  choices otherwise), its node (400 `does not have a host assigned`), the container's state (exec needs it
  running, a log needs it started), and the kubelet's address from the Node: `status.addresses` (InternalIP,
  then ExternalIP, then Hostname) and `status.daemonEndpoints.kubeletEndpoint.Port`. RBAC has already run in the
  server's guard: `create` on `pods/exec` — for the WebSocket GET too, as kube-apiserver ≥ 1.35 requires
  (rbac.py) — and `get` on `pods/log`.
- exec is served over WebSocket only (`v5.channel.k8s.io`, `v4.channel.k8s.io`): kubectl ≥ 1.30 tries it first
  and only falls back to SPDY/3.1 (a POST) when the upgrade fails, so a POST is answered with a 400 saying so.
  The kubelet is dialled with the subprotocols the client offered and the client is answered with the one the
  kubelet chose; then frames are relayed both ways unchanged. A kubelet that cannot be reached is reported on the
  error stream (Failure, `error dialing backend: …`), as kube-apiserver's stream translator does.
- log is a plain GET whose body is the kubelet's, streamed as it comes (`follow`).

The kubelet trusts the API server by a bearer token (`kubelet_client_token`): derived from the server's signing
key, so it needs no file of its own, stays the same across restarts on one state directory, and tells nothing
about the key. Whoever starts the kubelets (the simulated cluster) hands it to them; nothing else holds it, and
it is never stored in an object a client could read (a Node annotation would be).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from yarl import URL

from vdpa_operator import remotecommand as rc
from vdpa_operator.sim.apiserver.credentials import Credentials
from vdpa_operator.sim.apiserver.errors import StatusError, bad_request
from vdpa_operator.sim.apiserver.store import Store

log = logging.getLogger(__name__)

KUBELET_TOKEN = web.AppKey("kubelet_token", str)
KUBELET_CLIENT = web.AppKey("kubelet_client", aiohttp.ClientSession)
EXEC_SESSIONS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("exec_sessions")
PROXY_STORE = web.AppKey("proxy_store", Store)

ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
"""kube-apiserver's --kubelet-preferred-address-types, as far as a simulated node has them."""
DIAL_TIMEOUT = 10.0
MAX_MESSAGE = 4 * 1024 * 1024
_TOKEN_LABEL = b"vdpa-sim kubelet-client token v1"
_EXEC_QUERY = {"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"}
"""PodExecOptions' names → the kubelet's (kube-apiserver's `streamParams`)."""
_LOG_QUERY = ("follow", "previous", "timestamps", "tailLines", "limitBytes", "sinceSeconds", "sinceTime")


def kubelet_client_token(credentials: Credentials) -> str:
    """The token the API server shows kubelets (an HMAC of a fixed label under the signing key)."""
    digest = hmac.digest(credentials.signing_key, _TOKEN_LABEL, "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- the pod, its container, its kubelet -----------------------------------------------------------------------------


def _core(store: Store, plural: str) -> Any:
    rtype = store.registry.lookup("", "v1", plural)
    assert rtype is not None  # a built-in kind
    return rtype


def container_of(pod: Mapping[str, Any], requested: str | None) -> str:
    """The container a request means: the one named (it must exist), or the pod's only one."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [str(c.get("name", "")) for c in spec.get("containers") or []]
    others = [str(c.get("name", "")) for key in ("initContainers", "ephemeralContainers") for c in spec.get(key) or []]
    if requested:
        if requested not in names + others:
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")


def container_state(pod: Mapping[str, Any], container: str) -> tuple[str, str]:
    """("running" | "waiting" | "terminated", why) from the container's status, or from the pod's phase when the
    kubelet has reported no container status yet."""
    status = pod.get("status") or {}
    for entry in [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]:
        if entry.get("name") == container:
            state = entry.get("state") or {}
            for kind in ("running", "terminated", "waiting"):
                if kind in state:
                    return kind, str((state[kind] or {}).get("reason") or "")
    phase = status.get("phase") or "Pending"
    if phase == "Running":
        return "running", ""
    if phase in ("Succeeded", "Failed"):
        return "terminated", phase
    return "waiting", "ContainerCreating"


def _started(pod: Mapping[str, Any], container: str) -> None:
    state, why = container_state(pod, container)
    if state == "waiting":
        raise bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: {why}')


def _running(pod: Mapping[str, Any], container: str) -> None:
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    _started(pod, container)
    if container_state(pod, container)[0] != "running":
        raise bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" is not running')


def kubelet_endpoint(store: Store, pod: Mapping[str, Any]) -> tuple[str, int]:
    """(address, port) of the kubelet running `pod`, from its Node."""
    name = pod["metadata"]["name"]
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise bad_request(f"pod {name} does not have a host assigned")
    try:
        node = store.read(_core(store, "nodes"), "", node_name)
    except StatusError as err:
        if err.code != 404:
            raise
        raise StatusError(500, "InternalError", f'pod {name} is on node "{node_name}", which does not exist') from None
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or [] if isinstance(a, dict)}
    address = next((addresses[t] for t in ADDRESS_TYPES if addresses.get(t)), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not address or not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise StatusError(500, "InternalError", f'node "{node_name}" reports no kubelet endpoint: it needs '
                          f"status.addresses ({'/'.join(ADDRESS_TYPES)}) and "
                          f"status.daemonEndpoints.kubeletEndpoint.Port")
    return address, port


def _located(request: web.Request, *, running: bool) -> tuple[dict[str, Any], str, URL]:
    """The pod, its container and its kubelet's base URL, after the checks kube-apiserver makes."""
    store = request.app[PROXY_STORE]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    pod = store.read(_core(store, "pods"), namespace, name)
    container = container_of(pod, request.query.get("container"))
    (_running if running else _started)(pod, container)
    host, port = kubelet_endpoint(store, pod)
    return pod, container, URL.build(scheme="http", host=host, port=port)


def _headers(request: web.Request) -> dict[str, str]:
    return {"Authorization": f"Bearer {request.app[KUBELET_TOKEN]}"}


def _answer(err: StatusError) -> web.Response:
    return web.Response(body=json.dumps(err.status()).encode(), status=err.code, content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answering(handler: Handler) -> Handler:
    """A `StatusError` before the response started becomes its Status body; a bug a 500 that says what broke."""
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as err:
            return _answer(err)
        except web.HTTPException:  # aiohttp's own answer (a malformed WebSocket handshake)
            raise
        except Exception as err:
            log.exception("%s %s failed", request.method, request.path)
            return _answer(StatusError(500, "InternalError",
                                       f"an error on the server ({err!r}) has prevented the request"))
    return handle


# --- exec -----------------------------------------------------------------------------------------------------------


def _exec_query(request: web.Request) -> list[tuple[str, str]]:
    query = request.query
    commands = query.getall("command", [])
    if not commands:
        raise bad_request("you must specify at least 1 command")
    flags = [(kubelet, "1") for api, kubelet in _EXEC_QUERY.items() if query.get(api, "").lower() in ("1", "true")]
    if not any(name in ("input", "output", "error") for name, _ in flags):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return [("command", c) for c in commands] + flags


async def exec_pod(request: web.Request) -> web.StreamResponse:
    _pod, container, kubelet = _located(request, running=True)
    query = _exec_query(request)
    if request.method != "GET" or "websocket" not in request.headers.get("Upgrade", "").lower():
        if "spdy" in request.headers.get("Upgrade", "").lower():
            raise bad_request("this API server streams exec over WebSocket only (v5.channel.k8s.io, "
                              "v4.channel.k8s.io), not SPDY/3.1: use kubectl 1.30 or later, without "
                              "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false")
        raise bad_request("Upgrade request required")
    offered = [p for p in rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol")) if p in rc.PROTOCOLS]
    if not offered:
        raise bad_request(f"exec needs one of the WebSocket subprotocols {', '.join(rc.PROTOCOLS)}")
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    url = kubelet.with_path(f"/exec/{namespace}/{name}/{container}").with_query(query)
    upstream: aiohttp.ClientWebSocketResponse | None = None
    try:
        upstream = await request.app[KUBELET_CLIENT].ws_connect(
            url, protocols=offered, headers=_headers(request), max_msg_size=MAX_MESSAGE, autoping=True)
        refusal = ""
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        refusal = f"error dialing backend: {err}"
    client = web.WebSocketResponse(protocols=[upstream.protocol or offered[0]] if upstream else offered[:1],
                                   max_msg_size=MAX_MESSAGE)
    sessions: set[web.WebSocketResponse] = request.app[EXEC_SESSIONS]
    try:
        await client.prepare(request)
        sessions.add(client)
        if upstream is None:
            await client.send_bytes(rc.status_message(rc.failure(refusal)))
            return client
        await _relay_both_ways(client, upstream)
        if upstream.closed and upstream.close_code != aiohttp.WSCloseCode.OK and not client.closed:
            # without a status kubectl would take the end for success
            await client.send_bytes(rc.status_message(rc.failure(
                f"the kubelet's stream ended abnormally (WebSocket close code {upstream.close_code})")))
        return client
    finally:
        sessions.discard(client)
        if upstream is not None:
            await upstream.close()
        await client.close()


async def _relay_both_ways(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Frames both ways until either end closes; then the other is closed too."""
    tasks = [asyncio.create_task(_relay(client, upstream.send_bytes)),
             asyncio.create_task(_relay(upstream, client.send_bytes))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _relay(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 send: Callable[[bytes], Awaitable[None]]) -> None:
    async for message in source:
        if message.type == WSMsgType.BINARY:
            try:
                await send(message.data)
            except ConnectionError:
                return


# --- log ------------------------------------------------------------------------------------------------------------


_KUBELET_REASONS = {400: "BadRequest", 404: "NotFound"}


async def pod_log(request: web.Request) -> web.StreamResponse:
    _pod, container, kubelet = _located(request, running=False)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    query = [(key, request.query[key]) for key in _LOG_QUERY if key in request.query]
    url = kubelet.with_path(f"/containerLogs/{namespace}/{name}/{container}").with_query(query)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=DIAL_TIMEOUT)
    try:
        async with request.app[KUBELET_CLIENT].get(url, headers=_headers(request), timeout=timeout) as upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                code = upstream.status if upstream.status in _KUBELET_REASONS else 500
                raise StatusError(code, _KUBELET_REASONS.get(code, "InternalError"),
                                  text if code != 500 else f"the kubelet answered {upstream.status}: {text}")
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientPayloadError, ConnectionError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientConnectionError, TimeoutError) as err:
        raise StatusError(500, "InternalError", f'Get "{url}": {err}') from None


# --- wiring ---------------------------------------------------------------------------------------------------------


async def _kubelet_client(app: web.Application) -> AsyncIterator[None]:
    app[KUBELET_CLIENT] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=DIAL_TIMEOUT))
    yield
    await app[KUBELET_CLIENT].close()


async def _close_exec_sessions(app: web.Application) -> None:
    sessions = app[EXEC_SESSIONS]
    for ws in list(sessions):
        await ws.close(code=1001, message=b"API server shutting down")


def setup(app: web.Application, store: Store, credentials: Credentials) -> None:
    """Add the routes (before the catch-all resource route) and the kubelet client to the API server's app."""
    app[PROXY_STORE] = store
    app[KUBELET_TOKEN] = kubelet_client_token(credentials)
    app[EXEC_SESSIONS] = set()
    app.cleanup_ctx.append(_kubelet_client)
    app.on_shutdown.append(_close_exec_sessions)
    pods = "/api/v1/namespaces/{namespace}/pods/{name}"
    app.router.add_route("*", f"{pods}/exec", _answering(exec_pod))
    app.router.add_route("GET", f"{pods}/log", _answering(pod_log))

