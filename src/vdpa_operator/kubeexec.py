"""Run a command in a pod through the Kubernetes API, as `kubectl exec` does, and collect what it printed.

`vdpactl verify` uses this against real clusters and the simulated one alike: it reads the kubeconfig as the
project's other clients do (kubeclient.load_config: the file given, $KUBECONFIG, the in-cluster account,
~/.kube/config), authenticates as that kubeconfig says (token, token file, exec plugin, basic, client
certificate; lightkube's own readers), trusts its CA, and opens `pods/<pod>/exec` as a WebSocket offering
`v5.channel.k8s.io` then `v4.channel.k8s.io` (vdpa_operator.remotecommand), so an API server that predates v5
answers v4. No stdin, no terminal: stdout and stderr come back apart, with the exit code.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import msgspec
import yaml
from lightkube.config.client_adapter import user_auth, verify_cluster
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError
from yarl import URL

from vdpa_operator import remotecommand as rc
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.kubeclient import load_config

DEFAULT_TIMEOUT = 30.0

Kubeconfig = str | os.PathLike[str] | KubeConfig | SingleConfig | None
"""A kubeconfig file, a loaded kubeconfig (its current context) or one context; None: the usual search."""


class ExecError(VdpaOperatorError):
    """The command could not be run in the pod, or did not finish in time; the message says which and why."""


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


async def exec_in_pod(kubeconfig_or_settings: Kubeconfig, namespace: str, pod: str, command: Sequence[str], *,
                      container: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                      protocols: Sequence[str] = rc.PROTOCOLS) -> ExecResult:
    """Run `command` in `pod` (its `container`, or the pod's only one) and return its output and exit code.

    `ExecError` when the API refuses (the Status message: no such pod, forbidden, not running), the command cannot
    start (not found in the container), the connection breaks, or it has not ended within `timeout` seconds.
    `protocols`: the subprotocols to offer, newest first."""
    if not command:
        raise ExecError(f"exec in pod {namespace}/{pod}: no command given")
    where = f"pod {namespace}/{pod}" + (f" container {container}" if container else "")
    config = _context(kubeconfig_or_settings)
    url = _exec_url(config, namespace, pod, command, container)
    headers = await _authorization(config)
    tls = _tls(config)
    try:
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
            try:
                ws = await session.ws_connect(url, protocols=tuple(protocols), headers=headers, ssl=tls,
                                              max_msg_size=0)
            except aiohttp.WSServerHandshakeError as err:
                raise ExecError(f"exec in {where} refused: {await _why(session, url, headers, tls, err)}") from None
            async with ws:
                return await _collect(ws, where)
    except TimeoutError:
        raise ExecError(f"exec in {where}: {list(command)} did not finish within {timeout:g} s") from None
    except (aiohttp.ClientError, OSError) as err:
        raise ExecError(f"exec in {where}: cannot reach the API server at {config.cluster.server}: {err}") from None


def exec_in_pod_sync(kubeconfig_or_settings: Kubeconfig, namespace: str, pod: str, command: Sequence[str], *,
                     container: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> ExecResult:
    """`exec_in_pod` for callers without an event loop."""
    return asyncio.run(exec_in_pod(kubeconfig_or_settings, namespace, pod, command, container=container,
                                   timeout=timeout))


async def _collect(ws: aiohttp.ClientWebSocketResponse, where: str) -> ExecResult:
    out: dict[int, bytearray] = {rc.STDOUT: bytearray(), rc.STDERR: bytearray(), rc.ERROR: bytearray()}
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY:
            continue
        try:
            stream, data = rc.parse(message.data)
        except rc.RemoteCommandError as err:
            raise ExecError(f"exec in {where}: {err}") from None
        if stream in out:
            out[stream] += data
    if ws.close_code not in (None, aiohttp.WSCloseCode.OK):
        raise ExecError(f"exec in {where}: the connection closed abnormally (code {ws.close_code})")
    if not out[rc.ERROR]:
        raise ExecError(f"exec in {where}: the connection closed before the command's exit status arrived")
    try:
        code = rc.exit_code(bytes(out[rc.ERROR]))
    except rc.RemoteCommandError as err:
        raise ExecError(f"exec in {where} failed: {err}") from None
    return ExecResult(bytes(out[rc.STDOUT]), bytes(out[rc.STDERR]), code)


async def _why(session: aiohttp.ClientSession, url: URL, headers: dict[str, str], tls: ssl.SSLContext | bool,
               err: aiohttp.WSServerHandshakeError) -> str:
    """What the API server said when it refused the upgrade: the handshake error keeps only the HTTP status, so
    the same request is made again without the upgrade, whose answer is the Status (404, 403, 400)."""
    try:
        async with session.get(url, headers=headers, ssl=tls) as answer:
            body = await answer.read()
    except (aiohttp.ClientError, OSError):
        return f"HTTP {err.status}"
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status" and answer.status == err.status:
        return f"{err.status} {status.get('reason', '')}: {status.get('message', '')}"
    return f"HTTP {err.status}"


# --- configuration ----------------------------------------------------------------------------------------------------


def _context(given: Kubeconfig) -> SingleConfig:
    if isinstance(given, SingleConfig):
        return given
    where = str(given) if given is not None and not isinstance(given, KubeConfig) else "the kubeconfig"
    try:
        config = given if isinstance(given, KubeConfig) else load_config(None if given is None else os.fspath(given))
        context = config.get()
    except (ConfigError, KeyError, OSError, ValueError, yaml.YAMLError, msgspec.MsgspecError) as err:
        raise ExecError(f"no usable Kubernetes configuration ({where}): {err}") from None
    if context is None or context.user is None:
        raise ExecError(f"Kubernetes configuration {where}: the current context has no user (add one, even empty)")
    return context


def _exec_url(config: SingleConfig, namespace: str, pod: str, command: Sequence[str],
              container: str | None) -> URL:
    base = URL(config.cluster.server)
    query: list[tuple[str, str]] = [("command", part) for part in command]
    query += [("stdout", "true"), ("stderr", "true")]
    if container:
        query.append(("container", container))
    path = base.path.rstrip("/") + f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
    return base.with_path(path).with_query(query)


def _tls(config: SingleConfig) -> ssl.SSLContext | bool:
    if not config.cluster.server.startswith("https:") or config.user is None:
        return False
    try:
        context: ssl.SSLContext = verify_cluster(config.cluster, config.user, config.abs_file)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise ExecError(f"the kubeconfig's certificates for {config.cluster.server} are unusable: {err}") from None
    return context


async def _authorization(config: SingleConfig) -> dict[str, str]:
    """The Authorization header lightkube would send (its auth flow run once on a blank request)."""
    auth: Any = user_auth(config.user)
    if auth is None:
        return {}
    flow = auth.async_auth_flow(httpx2.Request("GET", config.cluster.server))
    try:
        request = await flow.__anext__()
    except ConfigError as err:
        raise ExecError(f"the kubeconfig's credentials are unusable: {err}") from None
    finally:
        await flow.aclose()
    value = request.headers.get("Authorization")
    return {"Authorization": value} if value else {}
