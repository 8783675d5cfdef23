"""Server-side printing: the `meta.k8s.io` Table (and PartialObjectMetadata) views that `kubectl get` asks for.

kubectl never formats columns itself: it sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints
what comes back. Custom resources get the CRD's `additionalPrinterColumns` after NAME (only Age when the CRD
lists none), as apiextensions-apiserver's table convertor does; core kinds get the columns of kube-apiserver's
printers for the kinds served here; any other kind gets the generic NAME, CREATED AT. Rows carry the object's
metadata (`includeObject=Metadata`, the default), which kubectl needs for `-A` and `--show-labels`.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vdpa_operator.sim.apiserver.errors import StatusError, bad_request
from vdpa_operator.sim.apiserver.resources import ResourceType

Object = Mapping[str, Any]
META_GROUP = "meta.k8s.io"
TABLE, PARTIAL, PARTIAL_LIST = "Table", "PartialObjectMetadata", "PartialObjectMetadataList"


@dataclass(frozen=True)
class View:
    """A `meta.k8s.io` representation the client asked for in its Accept header."""

    kind: str
    version: str

    @property
    def api_version(self) -> str:
        return f"{META_GROUP}/{self.version}"


def negotiate(accept: str, *, listing: bool) -> View | None:
    """The first acceptable media type of `accept`: a meta.k8s.io view, or None for plain JSON.

    Like kube-apiserver, a client that asks only for views this request cannot have gets 406 NotAcceptable;
    one that lists `application/json` (or `*/*`) after them falls back to the plain object.
    """
    wanted = [part.strip() for part in accept.split(",") if part.strip()]
    if not wanted:
        return None
    for media in wanted:
        base, *params = [p.strip() for p in media.split(";")]
        args = dict(p.partition("=")[::2] for p in params)
        if base not in ("application/json", "application/*", "*/*"):
            continue
        as_kind = args.get("as")
        if as_kind is None:
            return None
        if args.get("g") != META_GROUP or args.get("v") not in ("v1", "v1beta1"):
            continue
        if as_kind == TABLE or (as_kind == PARTIAL and not listing) or (as_kind == PARTIAL_LIST and listing):
            return View(as_kind, args["v"])
    raise StatusError(406, "NotAcceptable", f"only the following media types are accepted: application/json, "
                                            f"application/json;as=Table;v=v1;g={META_GROUP} (asked for: {accept})")


def partial(obj: Object, version: str = "v1") -> dict[str, Any]:
    """An object reduced to its metadata (`PartialObjectMetadata`)."""
    return {"kind": PARTIAL, "apiVersion": f"{META_GROUP}/{version}", "metadata": dict(obj.get("metadata") or {})}


def partial_list(items: Iterable[Object], resource_version: str, version: str = "v1") -> dict[str, Any]:
    return {
        "kind": PARTIAL_LIST, "apiVersion": f"{META_GROUP}/{version}",
        "metadata": {"resourceVersion": resource_version}, "items": [partial(i, version) for i in items],
    }


def table(
    rtype: ResourceType,
    items: Sequence[Object],
    resource_version: str,
    *,
    view: View = View(TABLE, "v1"),
    include_object: str = "Metadata",
    headers: bool = True,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """`items` as a Table: column definitions (unless `headers` is false, as for every watch event but the
    first), one row per item, the row's object per `includeObject` (Metadata, Object or None)."""
    if include_object not in ("Metadata", "Object", "None", ""):
        raise bad_request(f'unrecognized includeObject value: "{include_object}"')
    now = now or datetime.datetime.now(datetime.UTC)
    columns = columns_for(rtype)
    rows = []
    for item in items:
        row: dict[str, Any] = {"cells": [column.cell(item, now) for column in columns]}
        if include_object in ("Metadata", ""):
            row["object"] = partial(item, view.version)
        elif include_object == "Object":
            row["object"] = dict(item)
        rows.append(row)
    out: dict[str, Any] = {
        "kind": TABLE, "apiVersion": view.api_version, "metadata": {"resourceVersion": resource_version},
    }
    if headers:
        out["columnDefinitions"] = [column.definition() for column in columns]
    out["rows"] = rows
    return out


# --- columns ------------------------------------------------------------------------------------------------------

Cell = Callable[[Object, datetime.datetime], Any]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    cell: Cell
    description: str = ""
    format: str = ""
    priority: int = 0
    """0: always shown; 1: only with `kubectl get -o wide`."""

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format, "description": self.description,
                "priority": self.priority}


def _meta(obj: Object) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _name_column() -> Column:
    return Column("Name", "string", lambda obj, now: _meta(obj).get("name", ""), format="name",
                  description="Name must be unique within a namespace.")


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: the AGE kubectl shows (2m5s, 3h, 4d2h, ...)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m" if whole % 60 == 0 else f"{minutes}m{whole % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(timestamp: Any, now: datetime.datetime) -> str:
    """A timestamp as the time since it (`<unknown>` without one, `<invalid>` if unparsable)."""
    if not timestamp:
        return "<unknown>"
    when = _parse_time(timestamp)
    if when is None:
        return "<invalid>"
    return human_duration((now - when).total_seconds())


def _age_column() -> Column:
    return Column("Age", "string", lambda obj, now: age(_meta(obj).get("creationTimestamp"), now),
                  description="CreationTimestamp is a timestamp representing the server time when this object "
                              "was created.")


def _field(*path: str, default: Any = "") -> Cell:
    def cell(obj: Object, now: datetime.datetime) -> Any:
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return default if value is None else value
    return cell


def _count(*paths: tuple[str, ...]) -> Cell:
    def cell(obj: Object, now: datetime.datetime) -> int:
        total = 0
        for path in paths:
            value: Any = obj
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            total += len(value) if isinstance(value, (Mapping, list)) else 0
        return total
    return cell


def _node_status(obj: Object, now: datetime.datetime) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    status = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: Object, now: datetime.datetime) -> str:
    roles = set()
    for key, value in (_meta(obj).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(kind: str) -> Cell:
    def cell(obj: Object, now: datetime.datetime) -> str:
        for address in (obj.get("status") or {}).get("addresses") or []:
            if address.get("type") == kind:
                return str(address.get("address", ""))
        return "<none>"
    return cell


def _pod_ready(obj: Object, now: datetime.datetime) -> str:
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_status(obj: Object, now: datetime.datetime) -> str:
    """The phase, or the reason a container is waiting or ended with, or Terminating (the printer's rules,
    without init containers)."""
    status = obj.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if _meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_restarts(obj: Object, now: datetime.datetime) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (obj.get("status") or {}).get("containerStatuses") or [])


def _event_object(obj: Object, now: datetime.datetime) -> str:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: Object, now: datetime.datetime) -> str:
    when = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")
    return age(when, now)


def _service_ports(obj: Object, now: datetime.datetime) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _ready_replicas(obj: Object, now: datetime.datetime) -> str:
    ready = (obj.get("status") or {}).get("readyReplicas") or 0
    return f"{ready}/{(obj.get('spec') or {}).get('replicas', 1)}"


def _selector_text(obj: Object, now: datetime.datetime) -> str:
    selector = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _created_at(obj: Object, now: datetime.datetime) -> Any:
    return _meta(obj).get("creationTimestamp") or None


_BUILTIN: dict[tuple[str, str], Callable[[], list[Column]]] = {
    ("", "Namespace"): lambda: [
        _name_column(), Column("Status", "string", _field("status", "phase"), "The status of the namespace"),
        _age_column()],
    ("", "Node"): lambda: [
        _name_column(), Column("Status", "string", _node_status, "The status of the node"),
        Column("Roles", "string", _node_roles, "The roles of the node"), _age_column(),
        Column("Version", "string", _field("status", "nodeInfo", "kubeletVersion"), "Kubelet Version"),
        Column("Internal-IP", "string", _node_address("InternalIP"), "List of internal IPs.", priority=1),
        Column("External-IP", "string", _node_address("ExternalIP"), "List of external IPs.", priority=1),
        Column("OS-Image", "string", _field("status", "nodeInfo", "osImage", default="<unknown>"),
               "OS image reported by the node.", priority=1),
        Column("Kernel-Version", "string", _field("status", "nodeInfo", "kernelVersion", default="<unknown>"),
               "Kernel version reported by the node.", priority=1),
        Column("Container-Runtime", "string",
               _field("status", "nodeInfo", "containerRuntimeVersion", default="<unknown>"),
               "Container runtime version reported by the node.", priority=1)],
    ("", "ConfigMap"): lambda: [
        _name_column(), Column("Data", "integer", _count(("data",), ("binaryData",)), "Number of data items"),
        _age_column()],
    ("", "Secret"): lambda: [
        _name_column(), Column("Type", "string", _field("type"), "The type of the secret"),
        Column("Data", "integer", _count(("data",)), "The number of data items in the secret"), _age_column()],
    ("", "ServiceAccount"): lambda: [
        _name_column(), Column("Secrets", "string", _count(("secrets",)), "Secrets is the list of secrets allowed "
                                                                          "to be used by pods running using this "
                                                                          "ServiceAccount"),
        _age_column()],
    ("", "Event"): lambda: [
        Column("Last Seen", "string", _event_last_seen, "Time since the most recent occurrence"),
        Column("Type", "string", _field("type"), "Type of this event (Normal, Warning)"),
        Column("Reason", "string", _field("reason"), "Why the action was taken"),
        Column("Object", "string", _event_object, "The object that this event is about"),
        Column("Message", "string", _field("message"), "A human-readable description of the status")],
    ("", "Pod"): lambda: [
        _name_column(), Column("Ready", "string", _pod_ready, "The aggregate readiness state of the containers"),
        Column("Status", "string", _pod_status, "The aggregate status of the containers"),
        Column("Restarts", "string", _pod_restarts, "The number of times the containers were restarted"),
        _age_column(),
        Column("IP", "string", _field("status", "podIP", default="<none>"), "IP address of the pod", priority=1),
        Column("Node", "string", _field("spec", "nodeName", default="<none>"), "The node the pod runs on",
               priority=1)],
    ("", "Service"): lambda: [
        _name_column(), Column("Type", "string", _field("spec", "type", default="ClusterIP"), "The service type"),
        Column("Cluster-IP", "string", _field("spec", "clusterIP", default="<none>"), "The cluster IP"),
        Column("Port(s)", "string", _service_ports, "The ports the service exposes"), _age_column()],
    ("apps", "DaemonSet"): lambda: [
        _name_column(),
        Column("Desired", "integer", _field("status", "desiredNumberScheduled", default=0), "Pods wanted"),
        Column("Current", "integer", _field("status", "currentNumberScheduled", default=0), "Pods created"),
        Column("Ready", "integer", _field("status", "numberReady", default=0), "Pods ready"),
        Column("Up-to-date", "integer", _field("status", "updatedNumberScheduled", default=0), "Pods updated"),
        Column("Available", "integer", _field("status", "numberAvailable", default=0), "Pods available"),
        Column("Node Selector", "string", _selector_text, "The node selector of the pods"), _age_column()],
    ("apps", "Deployment"): lambda: [
        _name_column(), Column("Ready", "string", _ready_replicas, "Ready replicas"),
        Column("Up-to-date", "integer", _field("status", "updatedReplicas", default=0), "Updated replicas"),
        Column("Available", "integer", _field("status", "availableReplicas", default=0), "Available replicas"),
        _age_column()],
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): lambda: [
        _name_column(), Column("Webhooks", "integer", _count(("webhooks",)), "The number of webhooks"),
        _age_column()],
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): lambda: [
        _name_column(), Column("Webhooks", "integer", _count(("webhooks",)), "The number of webhooks"),
        _age_column()],
    ("coordination.k8s.io", "Lease"): lambda: [
        _name_column(), Column("Holder", "string", _field("spec", "holderIdentity"), "The lease holder"),
        _age_column()],
}


def columns_for(rtype: ResourceType) -> list[Column]:
    if rtype.crd is not None:
        return _crd_columns(rtype)
    builtin = _BUILTIN.get((rtype.group, rtype.kind))
    if builtin is not None:
        return builtin()
    # kube-apiserver's default table convertor, for kinds without a printer (CustomResourceDefinition, ...).
    return [_name_column(), Column("Created At", "date", _created_at,
                                   "CreationTimestamp is a timestamp representing the server time when this "
                                   "object was created.")]


def _crd_columns(rtype: ResourceType) -> list[Column]:
    crd = rtype.crd or {}
    spec = crd.get("spec") or {}
    version: Mapping[str, Any] = next(
        (v for v in spec.get("versions") or [] if v.get("name") == rtype.version), {})
    printer_columns = version.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
         "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                        "created."}]
    columns = [_name_column()]
    for definition in printer_columns:
        path = JsonPath(definition["jsonPath"])
        columns.append(Column(
            definition["name"], definition.get("type", "string"), _custom_cell(path, definition.get("type", "")),
            definition.get("description") or f"Custom resource definition column (in JSONPath format): "
                                              f"{definition['jsonPath']}",
            definition.get("format", ""), int(definition.get("priority", 0))))
    return columns


def _custom_cell(path: JsonPath, kind: str) -> Cell:
    """apiextensions' `cellForJSONValue`: the first result, typed by the column; a date becomes an age."""
    def cell(obj: Object, now: datetime.datetime) -> Any:
        results = path.find(obj)
        if not results or results[0] is None:
            return None
        value = results[0]
        if kind == "string":
            return _as_text(value)
        if kind == "integer":
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if kind == "number":
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if kind == "boolean":
            return value if isinstance(value, bool) else None
        if kind == "date":
            if not isinstance(value, str):
                return None
            return "<invalid>" if _parse_time(value) is None else age(value, now)
        return None
    return cell


def _as_text(value: Any) -> str:
    """How client-go's jsonpath prints a value into a string column (Go's fmt.Print for maps and lists)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_as_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_as_text(v) for v in value) + "]"
    return json.dumps(value)


# --- JSONPath, the subset printer columns use ----------------------------------------------------------------------

_FILTER = re.compile(r"""^\?\(@((?:\.[^=!<>]+)+?)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([^)\s]+))\)$""")


class JsonPath:
    """`.a.b`, escaped dots (`.metadata.annotations.example\\.com/x`), `[n]`, `[*]`, `['key']` and
    `[?(@.type=="Ready")]` (== and !=): what CRD printer columns use. Anything else is refused when the
    column is read, naming the path."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps = self._parse(text.strip().removeprefix("{").removesuffix("}").strip())

    def _parse(self, text: str) -> list[tuple[str, Any]]:
        steps: list[tuple[str, Any]] = []
        i = 0
        while i < len(text):
            if text[i] == ".":
                i += 1
                name = []
                while i < len(text) and text[i] not in ".[":
                    if text[i] == "\\" and i + 1 < len(text):
                        i += 1
                    name.append(text[i])
                    i += 1
                if name:
                    steps.append(("key", "".join(name)))
            elif text[i] == "[":
                end = text.find("]", i)
                if end < 0:
                    raise ValueError(f"unterminated [ in JSONPath {self.text!r}")
                inner = text[i + 1:end]
                i = end + 1
                if inner == "*":
                    steps.append(("all", None))
                elif inner.lstrip("-").isdigit():
                    steps.append(("index", int(inner)))
                elif inner[:1] in "'\"" and inner[-1:] == inner[:1]:
                    steps.append(("key", inner[1:-1]))
                elif m := _FILTER.match(inner):
                    field_path = [p for p in m.group(1).split(".") if p]
                    value = next(v for v in m.group(3, 4, 5) if v is not None)
                    steps.append(("filter", (field_path, m.group(2), value)))
                else:
                    raise ValueError(f"JSONPath {self.text!r}: [{inner}] is not supported here")
            else:
                raise ValueError(f"JSONPath {self.text!r}: unexpected {text[i]!r} at {i}")
        return steps

    def find(self, obj: Any) -> list[Any]:
        """Every value the path reaches (missing keys give none, as with AllowMissingKeys)."""
        current = [obj]
        for kind, arg in self.steps:
            following: list[Any] = []
            for value in current:
                if (kind == "key" and isinstance(value, Mapping) and arg in value) or (
                        kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value)):
                    following.append(value[arg])
                elif kind == "all":
                    following.extend(value.values() if isinstance(value, Mapping) else
                                     value if isinstance(value, list) else [])
                elif kind == "filter" and isinstance(value, list):
                    following.extend(v for v in value if _filter_holds(v, *arg))
            current = following
        return current


def _filter_holds(item: Any, path: list[str], op: str, expected: str) -> bool:
    value = item
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    text = _as_text(value)
    return (text == expected) if op == "==" else (text != expected)
