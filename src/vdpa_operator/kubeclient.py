"""The project's one way to talk to a Kubernetes API: lightkube's `AsyncClient`, configured like controller-runtime.

Shared by the node daemon and the operator: the sriovnetwork kinds and the NAD as lightkube generic resources
(plain JSON dicts, turned into `api` models where they are used), configuration loading, the translation of every
client failure into one `ClusterError` that names the operation and the object, Events, and an `Informer`
(list + watch + re-list on 410, with a local cache) for the operator's controllers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from typing import Any, cast

import httpx2
import msgspec
import yaml
from lightkube import AsyncClient
from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError, NotReadyError
from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from vdpa_operator.api.kube import NetworkAttachmentDefinition
from vdpa_operator.api.models import (
    GROUP,
    OVSNetwork,
    SriovIBNetwork,
    SriovNetwork,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.errors import VdpaOperatorError

log = logging.getLogger(__name__)


class ClusterError(VdpaOperatorError):
    """The API could not be reached or refused a request; the message says what, on which object, and why."""


def namespaced_resource(group: str, kind: str, plural: str) -> Any:
    return create_namespaced_resource(group, "v1", kind, plural)


NodeStateResource = namespaced_resource(GROUP, SriovNetworkNodeState.KIND, SriovNetworkNodeState.PLURAL)
PolicyResource = namespaced_resource(GROUP, SriovNetworkNodePolicy.KIND, SriovNetworkNodePolicy.PLURAL)
PoolConfigResource = namespaced_resource(GROUP, SriovNetworkPoolConfig.KIND, SriovNetworkPoolConfig.PLURAL)
OperatorConfigResource = namespaced_resource(GROUP, SriovOperatorConfig.KIND, SriovOperatorConfig.PLURAL)
SriovNetworkResource = namespaced_resource(GROUP, SriovNetwork.KIND, SriovNetwork.PLURAL)
SriovIBNetworkResource = namespaced_resource(GROUP, SriovIBNetwork.KIND, SriovIBNetwork.PLURAL)
OVSNetworkResource = namespaced_resource(GROUP, OVSNetwork.KIND, OVSNetwork.PLURAL)
NadResource = namespaced_resource("k8s.cni.cncf.io", NetworkAttachmentDefinition.KIND, "network-attachment-definitions")
NodeResource: Any = create_global_resource("", "v1", "Node", "nodes")
"""Nodes as plain JSON: the operator only reads names and labels, so lightkube's typed model would be waste."""
PodResource = namespaced_resource("", "Pod", "pods")
ConfigMapResource = namespaced_resource("", "ConfigMap", "configmaps")
SecretResource = namespaced_resource("", "Secret", "secrets")
NamespaceResource: Any = create_global_resource("", "v1", "Namespace", "namespaces")


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def rfc3339(moment: datetime.datetime) -> str:
    """A metav1.Time as the API writes it: UTC, whole seconds, `Z`."""
    return moment.astimezone(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime.datetime | None:
    """Go's `time.Parse(time.RFC3339, text)`: a date, a time and a zone are all required; None otherwise."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def what(kind: str, name: str, namespace: str | None = None) -> str:
    """How errors and logs name an object: `Kind ns/name` or `Kind name`."""
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@contextlib.contextmanager
def api_errors(action: str, target: str) -> Iterator[None]:
    """Re-raise whatever the client raises as a `ClusterError` saying `<action> <target> failed: why`.

    `ApiError` stays reachable as `__cause__`, so callers can still look at the HTTP code (404, 409)."""
    try:
        yield
    except ApiError as err:
        status = err.status
        raise ClusterError(f"{action} {target} failed: {status.code} {status.reason}: {status.message}") from err
    except httpx2.HTTPStatusError as err:
        raise ClusterError(f"{action} {target} failed: HTTP {err.response.status_code}") from err
    except httpx2.HTTPError as err:
        raise ClusterError(
            f"{action} {target} failed: cannot reach the API server ({type(err).__name__}: {err}); will retry"
        ) from err
    except (msgspec.MsgspecError, NotReadyError, ValueError) as err:
        raise ClusterError(f"{action} {target} failed: unexpected answer from the API server: {err}") from err


def http_code(err: ClusterError) -> int | None:
    """The HTTP status of the API answer behind `err`, None when the server was not reached."""
    cause = err.__cause__
    return cause.status.code if isinstance(cause, ApiError) else None


def _target(resource: Any, name: str, namespace: str | None) -> str:
    return what(resource._api_info.resource.kind, name, namespace)


async def get_or_none(client: AsyncClient, resource: Any, name: str, *, namespace: str | None = None) -> Any:
    """The object, or None when the API answers 404; any other failure is a `ClusterError`."""
    try:
        with api_errors("get", _target(resource, name, namespace)):
            return await client.get(resource, name, namespace=namespace)
    except ClusterError as err:
        if http_code(err) == 404:
            return None
        raise


async def delete_if_present(client: AsyncClient, resource: Any, name: str, *, namespace: str | None = None) -> bool:
    """Delete the object; False when it was already gone (404)."""
    try:
        with api_errors("delete", _target(resource, name, namespace)):
            await client.delete(resource, name, namespace=namespace)
    except ClusterError as err:
        if http_code(err) == 404:
            return False
        raise
    return True


def load_config(kubeconfig: str | None = None) -> KubeConfig:
    """controller-runtime's order: the given file, then $KUBECONFIG (its first entry), then the pod's service
    account, then ~/.kube/config."""
    if kubeconfig:
        return KubeConfig.from_file(kubeconfig)
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return KubeConfig.from_file(env.split(os.pathsep)[0])
    try:
        return KubeConfig.from_service_account()
    except (ConfigError, KeyError):
        return KubeConfig.from_file(DEFAULT_KUBECONFIG)


def connect_client(kubeconfig: str | None, namespace: str, field_manager: str) -> AsyncClient:
    """An `AsyncClient` from the kubeconfig file if given, else $KUBECONFIG, the in-cluster service account or
    ~/.kube/config. Raises `ClusterError` when no configuration can be loaded."""
    where = kubeconfig or os.environ.get("KUBECONFIG") or "in-cluster config or " + DEFAULT_KUBECONFIG
    try:
        config = load_config(kubeconfig)
        context = config.get()
    except (ConfigError, KeyError, OSError, ValueError, yaml.YAMLError, msgspec.MsgspecError) as err:
        raise ClusterError(f"no usable Kubernetes configuration ({where}): {err}") from err
    if context is None or context.user is None:
        # lightkube asserts on this; say what to fix instead.
        raise ClusterError(f"Kubernetes configuration {where}: the current context has no user (add one, even empty)")
    return AsyncClient(context, namespace=namespace, field_manager=field_manager)


def new_event(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    component: str,
    host: str = "",
    warning: bool = False,
) -> dict[str, Any]:
    """A core/v1 Event about `involved` (apiVersion, kind, name, namespace, uid), named as client-go's recorder
    names them: `<object>.<unix nanoseconds in hex>`, in the object's namespace (`default` for cluster-scoped)."""
    now = rfc3339(datetime.datetime.now(datetime.UTC))
    namespace = involved.get("namespace") or "default"
    source: dict[str, str] = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": namespace},
        "involvedObject": {k: v for k, v in involved.items() if v},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": host or component,
    }


EventResource = namespaced_resource("", "Event", "events")
LeaseResource = namespaced_resource("coordination.k8s.io", "Lease", "leases")


async def record_event(client: AsyncClient, event: dict[str, Any]) -> None:
    """Create the Event; best effort, as client-go's recorder: a failure is logged, never raised."""
    try:
        with api_errors(f"record event {event['reason']} on", event["involvedObject"].get("name", "?")):
            await client.create(EventResource.from_dict(event))
    except ClusterError as err:
        log.warning("%s", err)


LIST_CHUNK = 500
"""Objects per list page (client-go's reflector pages by 500 too): bounds the memory of a re-list."""

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""
OnEvent = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], Awaitable[None] | None]
"""Called with (type, new, old): ADDED (old None), MODIFIED, DELETED (new None), and SYNCED (both None)."""
SYNCED = "SYNCED"
"""Emitted after each (re-)list, once its differences were reported: the cache is complete again."""


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class Informer:
    """List then watch one resource type, keeping the objects in `cache` and calling `on_event` per change.

    A broken stream or a 410 (the version is older than the server keeps) means re-list, after a backoff, and
    report the difference from the cache as events, as client-go's reflector does. `synced` is set after the
    first successful list."""

    def __init__(
        self,
        client: AsyncClient,
        resource: Any,
        *,
        namespace: str | None = None,
        fields: Mapping[str, str] | None = None,
        on_event: OnEvent | None = None,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        server_timeout: int = 300,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._client = client
        self.transform = transform or (lambda obj: obj)
        """Applied to every object before it is cached (client-go's SetTransform): drop what is never read."""
        self._resource = resource
        self._namespace = namespace
        self._fields: Any = dict(fields) if fields else None
        self._on_event = on_event
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._server_timeout = server_timeout
        self.cache: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        info = resource._api_info
        self.name = f"{info.plural}" + (f" in {namespace}" if namespace else "")
        # lightkube: "*" lists a namespaced kind across namespaces; cluster-scoped kinds take no namespace.
        self._scope = (namespace or "*") if issubclass(resource, NamespacedResource) else None

    def get(self, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self.cache.get((namespace, name))

    def objects(self) -> list[dict[str, Any]]:
        return list(self.cache.values())

    async def _emit(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        if self._on_event is None:
            return
        result = self._on_event(kind, new, old)
        if result is not None:
            await result

    def _apply(self, kind: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        key = key_of(obj)
        old = self.cache.get(key)
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        return old

    async def _relist(self) -> str:
        """List everything, replace the cache, emit the differences; the list's resourceVersion."""
        with api_errors("list", self.name):
            listing = self._client.list(self._resource, namespace=self._scope, fields=self._fields,
                                        chunk_size=LIST_CHUNK)
            fresh: dict[Key, dict[str, Any]] = {}
            async for item in listing:
                fresh[key_of(item)] = self.transform(_plain(item))
            version = listing.resourceVersion
        old_cache, self.cache = self.cache, fresh
        for key, obj in fresh.items():
            before = old_cache.get(key)
            if before is None:
                await self._emit("ADDED", obj, None)
            elif _version(before) != _version(obj):
                await self._emit("MODIFIED", obj, before)
        for key in old_cache.keys() - fresh.keys():
            await self._emit("DELETED", None, old_cache[key])
        await self._emit(SYNCED, None, None)
        self.synced.set()
        return version or ""

    async def run(self) -> None:
        """Forever: list, watch, re-list after a failure. Cancel the task to stop."""
        delay = self._retry_delay
        version: str | None = None
        while True:
            if version is None:
                try:
                    version = await self._relist()
                    delay = self._retry_delay
                except ClusterError as err:
                    log.warning("%s; retrying in %.0f s", err, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay)
                    continue
            stream = self._client.watch(
                self._resource,
                namespace=self._scope,
                fields=self._fields,
                resource_version=version,
                server_timeout=self._server_timeout,
            )
            try:
                # lightkube types the watch as an AsyncIterable; it is an async generator whose aclose() ends the
                # HTTP stream.
                async with contextlib.aclosing(cast(AsyncGenerator[tuple[str, Any], None], stream)) as events:
                    async for kind, item in events:
                        obj = self.transform(_plain(item))
                        version = _version(obj) or version
                        old = self._apply(kind, obj)
                        # ADDED is a creation even when a write-through copy was cached first.
                        await self._emit(kind, None if kind == "DELETED" else obj, None if kind == "ADDED" else old)
                # The server ended the watch (timeout): resume from the last version seen.
                continue
            except ApiError as err:
                if err.status.code == 410:
                    log.info("watch of %s expired (%s); re-listing", self.name, err.status.message)
                else:
                    log.warning("watch of %s failed: %s %s; re-listing in %.0f s", self.name, err.status.code,
                                err.status.message, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay)
            except (httpx2.HTTPError, msgspec.MsgspecError, ValueError) as err:
                log.warning("watch of %s broke: %s: %s; re-listing", self.name, type(err).__name__, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
            version = None


def _plain(item: Any) -> dict[str, Any]:
    """The object as plain JSON (generic resources already are dicts; typed models convert)."""
    if isinstance(item, dict):
        return dict(item)
    return cast(dict[str, Any], item.to_dict())


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
