"""SriovNetwork, SriovIBNetwork and OVSNetwork → the NetworkAttachmentDefinition upstream writes, and what the
network controller does about it (upstream `RenderNetAttDef`, `generic_network_controller.go`).

The CNI configuration is a JSON *string* that Multus hands to the CNI plugin and that users and tests compare
literally, so it is built the way upstream builds it, in three stages:

1. upstream's Go template (`bindata/manifests/cni-config/{sriov,ovs}/*-cni-config.yaml`) fills the user's
   fields in unchanged: `capabilities`, `metaPlugins`, `logFile`, `bridge` and `interfaceType` as written,
   `ipam` with every whitespace character removed (Go `strings.Fields`), `trunk` as Go's `json.Marshal`;
2. that text is the value of a single-quoted YAML scalar spanning several lines, so YAML folds it: a line break
   becomes a space, a run of blank lines becomes that many newlines, the indentation of each line goes, `''`
   is a literal quote — this is why upstream's configs read `{ "cniVersion":"1.0.0", "name":...` (`render_cni_config`,
   upstream's golden files);
3. the controller re-indents it with Go's `json.Indent(…, "", "    ")` before writing: tokens kept verbatim,
   insignificant whitespace dropped, `{}`/`[]` kept on one line (`render_network_attachment`).

Decisions where upstream is unclear or its behaviour is an accident:
- Invalid JSON (upstream: the re-indent fails, the error is logged and the reconcile retried forever with no
  condition) is a `NetworkRenderError` naming the offending field; the plan sets Ready=False with reason
  NetworkAttachmentDefinitionInvalid, as upstream does for its other rendering failures, and nothing is written.
- Text the YAML stage cannot carry (a lone `'`, a line starting `---` or `...`, a control character) fails
  upstream's rendering with a YAML parser error; here it is the same condition with a message naming the field.
- The owner-ref annotation is always `<Kind>.sriovnetwork.openshift.io/<namespace>/<name>`: upstream's
  `unknown/…` fallback only fires for objects built without a kind, which the models here never are.
- The metadata lines of upstream's template are plain YAML scalars; a resourceName containing `: ` or ` #`
  would be mangled there. Such a name matches no device-plugin resource anyway, so it is written as is.

The controller's decisions (`plan_network`) follow `genericNetworkReconciler.Reconcile` step by step:
- a network outside the operator namespace with `networkNamespace` set: Ready=False (Invalid), nothing else;
- a network in the operator namespace gets the finalizer `netattdef.finalizers.sriovnetwork.openshift.io`; when it
  is deleted the NAD in its target namespace is deleted, then the finalizer removed. Elsewhere the NAD lives in
  the network's own namespace with an ownerReference and is garbage-collected;
- annotation `operator.sriovnetwork.openshift.io/last-network-namespace` (set to the target namespace when the
  NAD is *created*) differs from the target namespace: the NAD in that old namespace is deleted (NotFound is
  fine) and the annotation set to "" (upstream then also issues a namespace-less delete for an annotation that is
  already ""; that can only answer NotFound, so it is left out);
- no NAD in the target namespace: Ready=False (NamespaceNotFound) when the namespace does not exist, else create;
- a NAD exists whose owner-ref annotation names another network: Ready=False (Invalid), left alone. One without
  the annotation (created by hand) is taken over;
- a NAD exists and its `spec.config` or its annotations (all of them, compared as maps) differ: replaced
  wholesale (PUT with the live resourceVersion), so labels, finalizers and extra annotations on it go; other
  metadata differences (ownerReferences) alone do not cause a write;
- Ready=True (NetworkReady) once the NAD is in place. A failed create or replace gives Ready=False (Invalid) with
  the API error (`write_failed_condition`).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from vdpa_operator.api import golang
from vdpa_operator.api.kube import NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec
from vdpa_operator.api.meta import Condition, ObjectMeta, OwnerReference
from vdpa_operator.api.models import GROUP, OVSNetwork, SriovIBNetwork, SriovNetwork
from vdpa_operator.api.multus import RESOURCE_NAME_ANNOTATION
from vdpa_operator.errors import VdpaOperatorError

Network: TypeAlias = SriovNetwork | SriovIBNetwork | OVSNetwork

OWNER_REF_ANNOTATION = "sriovnetwork.openshift.io/owner-ref"
LAST_NETWORK_NAMESPACE = "operator.sriovnetwork.openshift.io/last-network-namespace"
NETATTDEF_FINALIZER = "netattdef.finalizers.sriovnetwork.openshift.io"
CNI_VERSION = "1.0.0"

CONDITION_READY = "Ready"
REASON_NETWORK_READY = "NetworkReady"
REASON_NAD_NOT_FOUND = "NetworkAttachmentDefinitionNotFound"
"""Upstream sets it when reading the NAD fails with anything but NotFound: see `read_failed_condition`."""
REASON_NAD_INVALID = "NetworkAttachmentDefinitionInvalid"
REASON_NAMESPACE_NOT_FOUND = "NamespaceNotFound"
MESSAGE_READY = "NetworkAttachmentDefinition is provisioned and ready"

LINK_STATES = ("enable", "disable", "auto")
ON_OFF = ("on", "off")


class NetworkRenderError(VdpaOperatorError, ValueError):
    """The network cannot be rendered into a CNI configuration; `field` is the JSON path of the culprit."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}; {fix}")


# --- Stage 1: upstream's template ---------------------------------------------------------------------------


@dataclass
class _Template:
    """The template's output as pieces, each user value tagged with its field so errors can name it."""

    pieces: list[tuple[str, str | None]] = field(default_factory=list)

    def text(self, text: str) -> None:
        self.pieces.append((text, None))

    def value(self, text: str, where: str) -> None:
        self.pieces.append((text, where))


_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
"""Go's `unicode.IsSpace`, which `strings.Fields` splits on (Python's `str.split` also splits on \\x1c-\\x1f)."""


def _compact_ipam(ipam: str) -> str:
    return _GO_SPACE.sub("", ipam)


def _trunk_json(network: OVSNetwork) -> str:
    """`json.Marshal([]*TrunkConfig)`: fields in declaration order, nil pointers left out, 0 kept."""
    return golang.marshal([
        {key: value for key, value in (("minID", t.min_id), ("maxID", t.max_id), ("id", t.id)) if value is not None}
        for t in network.spec.trunk
    ])


def _open(tpl: _Template, network: Network, cni_type: str) -> None:
    tpl.text('{\n  "cniVersion":"' + CNI_VERSION + '",\n  "name":"')
    tpl.value(network.name, "metadata.name")
    tpl.text('",')
    if network.spec.meta_plugins:
        tpl.text('"plugins": [\n    {')
    tpl.text(f'"type":"{cni_type}",')


def _close(tpl: _Template, network: Network) -> None:
    tpl.text('"ipam":')
    ipam = network.spec.ipam
    if ipam:
        tpl.value(_compact_ipam(ipam), "spec.ipam")
    else:
        tpl.text("{}")
    tpl.text("\n}")
    if network.spec.meta_plugins:
        tpl.text(",\n  ")
        tpl.value(network.spec.meta_plugins, "spec.metaPlugins")
        tpl.text("\n  ]\n}")


def _capabilities(tpl: _Template, capabilities: str) -> None:
    if capabilities:
        tpl.text('"capabilities":')
        tpl.value(capabilities, "spec.capabilities")
        tpl.text(",")


def _sriov_template(network: SriovNetwork | SriovIBNetwork) -> _Template:
    tpl = _Template()
    spec = network.spec
    _open(tpl, network, "sriov" if isinstance(network, SriovNetwork) else "ib-sriov")
    if isinstance(network, SriovNetwork):
        sriov = network.spec
        tpl.text(f'"vlan":{sriov.vlan},')
        if sriov.spoof_chk in ON_OFF:
            tpl.text(f'"spoofchk":"{sriov.spoof_chk}",')
        if sriov.trust in ON_OFF:
            tpl.text(f'"trust":"{sriov.trust}",')
        if 0 <= sriov.vlan_qos <= 7:
            tpl.text(f'"vlanQoS":{sriov.vlan_qos},')
        if sriov.vlan_proto:
            tpl.text(f'"vlanProto":"{sriov.vlan_proto}",')
        if sriov.min_tx_rate is not None and sriov.min_tx_rate >= 0:
            tpl.text(f'"min_tx_rate":{sriov.min_tx_rate},')
        if sriov.max_tx_rate is not None and sriov.max_tx_rate >= 0:
            tpl.text(f'"max_tx_rate":{sriov.max_tx_rate},')
    _capabilities(tpl, spec.capabilities)
    if spec.link_state in LINK_STATES:
        tpl.text(f'"link_state":"{spec.link_state}",')
    if isinstance(network, SriovNetwork):
        # The IB CNI takes neither: upstream hard-codes both off for SriovIBNetwork.
        if network.spec.log_level:
            tpl.text(f'"logLevel":"{network.spec.log_level}",')
        if network.spec.log_file:
            tpl.text('"logFile":"')
            tpl.value(network.spec.log_file, "spec.logFile")
            tpl.text('",')
    _close(tpl, network)
    return tpl


def _ovs_template(network: OVSNetwork) -> _Template:
    tpl = _Template()
    spec = network.spec
    _open(tpl, network, "ovs")
    _capabilities(tpl, spec.capabilities)
    if spec.bridge:
        tpl.text('"bridge":"')
        tpl.value(spec.bridge, "spec.bridge")
        tpl.text('",')
    if spec.vlan:
        tpl.text(f'"vlan":{spec.vlan},')
    if spec.mtu:
        tpl.text(f'"mtu":{spec.mtu},')
    if spec.trunk:
        tpl.text(f'"trunk":{_trunk_json(network)},')
    if spec.interface_type:
        tpl.text('"interface_type":"')
        tpl.value(spec.interface_type, "spec.interfaceType")
        tpl.text('",')
    _close(tpl, network)
    return tpl


# --- Stage 2: the single-quoted YAML scalar -----------------------------------------------------------------

_BLANKS = " \t"
_BREAKS = "\r\n\x85\u2028\u2029"
_OPENING_COLUMN = len("  config: '")
"""Where the scalar starts in upstream's manifest: never column 0, so its first line is no document marker."""


def _yaml_printable(char: str) -> bool:
    """go-yaml's reader check: anything else is "control characters are not allowed"."""
    code = ord(char)
    return (
        char in "\t\n\r" or 0x20 <= code <= 0x7E or code == 0x85 or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    )


class _Source:
    """The template output as one string, with the field each position came from."""

    def __init__(self, tpl: _Template) -> None:
        self.text = "".join(piece for piece, _ in tpl.pieces) + "'"
        self._starts: list[int] = []
        self._fields: list[str | None] = []
        offset = 0
        for piece, where in tpl.pieces:
            self._starts.append(offset)
            self._fields.append(where)
            offset += len(piece)

    def field_at(self, pos: int) -> str:
        index = bisect.bisect_right(self._starts, pos) - 1
        where = self._fields[index] if 0 <= index < len(self._fields) else None
        return where or "spec"


def _fold_single_quoted(source: _Source) -> str:
    """The value of the single-quoted YAML scalar whose text (after the opening quote) is `source.text`,
    following go-yaml's `yaml_parser_scan_flow_scalar`."""
    text = source.text
    n = len(text)
    for pos, char in enumerate(text):
        if not _yaml_printable(char):
            raise NetworkRenderError(
                source.field_at(pos), f"contains the control character U+{ord(char):04X}, which YAML does not allow",
                "remove it",
            )
    out: list[str] = []
    pos = 0
    column = _OPENING_COLUMN
    while True:
        if column == 0 and (text.startswith("---", pos) or (
            text.startswith("...", pos) and (pos + 3 >= n or text[pos + 3] in _BLANKS + _BREAKS)
        )):
            # kube's YAML reader splits documents on any line starting "---"; go-yaml rejects "..." + blank.
            raise NetworkRenderError(
                source.field_at(pos), f"has a line starting with {text[pos:pos + 3]!r}, a YAML document marker",
                "indent that line or remove the marker",
            )
        while pos < n and text[pos] not in _BLANKS + _BREAKS:
            if text[pos] == "'":
                if text.startswith("''", pos):
                    out.append("'")
                    pos += 2
                    column += 2
                    continue
                if pos == n - 1:
                    return "".join(out)  # the template's closing quote
                raise NetworkRenderError(
                    source.field_at(pos),
                    "contains a single quote (') that ends the YAML string of upstream's manifest template",
                    "write it twice ('') for a literal quote, or remove it",
                )
            out.append(text[pos])
            pos += 1
            column += 1
        whitespace: list[str] = []
        leading_break = ""
        trailing_breaks: list[str] = []
        leading_blanks = False
        while pos < n and text[pos] in _BLANKS + _BREAKS:
            if text[pos] in _BLANKS:
                if not leading_blanks:
                    whitespace.append(text[pos])
                pos += 1
                column += 1
                continue
            # A line break: CR LF, CR, LF and NEL read as "\n"; LS and PS are kept as they are.
            if text.startswith("\r\n", pos):
                line_break, pos = "\n", pos + 2
            else:
                line_break, pos = ("\n" if text[pos] in "\r\n\x85" else text[pos]), pos + 1
            column = 0
            if not leading_blanks:
                whitespace = []
                leading_break = line_break
                leading_blanks = True
            else:
                trailing_breaks.append(line_break)
        if leading_blanks:
            if leading_break == "\n":
                out.append("".join(trailing_breaks) if trailing_breaks else " ")
            else:
                out.append(leading_break + "".join(trailing_breaks))
        else:
            out.extend(whitespace)
        if pos >= n:  # unreachable: the closing quote is always there
            raise NetworkRenderError("spec", "the rendered configuration has no end", "report this as a bug")


# --- Stage 3: Go's json.Indent ------------------------------------------------------------------------------

_JSON_SPACE = " \t\r\n"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _json_error(text: str) -> str | None:
    """Why `text` is not one JSON value as Go's decoder reads it (Python's also takes NaN and Infinity), or None."""
    try:
        json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return "nested too deeply"
    except ValueError as err:
        return str(err)
    return None


def go_json_indent(text: str, indent: str) -> str:
    """Go's `json.Indent(dst, text, "", indent)` of valid JSON: every token as written (numbers, escapes,
    key order, duplicate keys), whitespace between tokens dropped, empty `{}`/`[]` kept on one line, whitespace
    after the value kept."""
    body = text.strip(_JSON_SPACE)
    trailing = text[len(text.rstrip(_JSON_SPACE)):] if body else ""
    out: list[str] = []
    depth = 0
    need_indent = False
    pos, n = 0, len(body)
    while pos < n:
        char = body[pos]
        if char in _JSON_SPACE:
            pos += 1
            continue
        if need_indent and char not in "}]":
            need_indent = False
            depth += 1
            out.append("\n" + indent * depth)
        if char == '"':
            end = pos + 1
            while body[end] != '"':
                end += 2 if body[end] == "\\" else 1
            out.append(body[pos:end + 1])
            pos = end + 1
            continue
        if char in "{[":
            need_indent = True
            out.append(char)
        elif char == ",":
            out.append(",\n" + indent * depth)
        elif char == ":":
            out.append(": ")
        elif char in "}]":
            if need_indent:
                need_indent = False
            else:
                depth -= 1
                out.append("\n" + indent * depth)
            out.append(char)
        else:
            out.append(char)
        pos += 1
    return "".join(out) + trailing


# --- Rendering ----------------------------------------------------------------------------------------------


def target_namespace(network: Network) -> str:
    """Where the network's NAD lives: `spec.networkNamespace`, else the network's own namespace."""
    return network.spec.network_namespace or network.namespace


def owner_ref_annotation(network: Network) -> str:
    """Upstream `OwnerRefToString`: `<Kind>.<group>/<namespace>/<name>`."""
    return f"{network.KIND}.{GROUP}/{network.namespace}/{network.name}"


def render_cni_config(network: Network) -> str:
    """The CNI configuration as upstream's `RenderNetAttDef` returns it: template output, YAML-folded, not yet
    checked or re-indented (upstream's golden files hold this text, invalid JSON included)."""
    tpl = _ovs_template(network) if isinstance(network, OVSNetwork) else _sriov_template(network)
    return _fold_single_quoted(_Source(tpl))


def render_network_attachment_raw(network: Network, resource_prefix: str) -> NetworkAttachmentDefinition:
    """Upstream's `RenderNetAttDef` result: the object of the manifest template, config as `render_cni_config`."""
    return NetworkAttachmentDefinition(
        api_version=NetworkAttachmentDefinition.API_VERSION,
        kind=NetworkAttachmentDefinition.KIND,
        metadata=ObjectMeta(
            name=network.name,
            namespace=target_namespace(network),
            annotations={
                RESOURCE_NAME_ANNOTATION: f"{resource_prefix}/{network.spec.resource_name}",
                OWNER_REF_ANNOTATION: owner_ref_annotation(network),
            },
        ),
        spec=NetworkAttachmentDefinitionSpec(config=render_cni_config(network)),
    )


def _field_json_problems(network: Network) -> list[tuple[str, str]]:
    """Each user field that upstream pastes into the JSON, checked on its own: (field, why it is not JSON)."""
    spec = network.spec
    checks: list[tuple[str, str]] = []
    if spec.capabilities:
        checks.append(("spec.capabilities", spec.capabilities))
    if spec.ipam:
        checks.append(("spec.ipam", _compact_ipam(spec.ipam)))
    if spec.meta_plugins:
        checks.append(("spec.metaPlugins", "[" + spec.meta_plugins + "]"))
    strings = {"spec.logFile": network.spec.log_file} if isinstance(network, SriovNetwork) else {}
    if isinstance(network, OVSNetwork):
        strings = {"spec.bridge": network.spec.bridge, "spec.interfaceType": network.spec.interface_type}
    checks += [(where, f'"{value}"') for where, value in strings.items() if value]
    problems = []
    for where, text in checks:
        error = _json_error(text)
        if error is not None:
            problems.append((where, error))
    return problems


_FIXES = {
    "spec.capabilities": 'write a JSON object, e.g. {"mac": true}',
    "spec.ipam": 'write a JSON object, e.g. {"type": "host-local", "subnet": "10.56.217.0/24"}',
    "spec.metaPlugins": 'write one or more comma-separated JSON objects, e.g. {"type": "tuning"}',
    "spec.logFile": 'write a plain path without \'"\' or "\\"',
    "spec.bridge": 'write a plain bridge name without \'"\' or "\\"',
    "spec.interfaceType": 'write a plain interface type without \'"\' or "\\"',
}


def render_network_attachment(network: Network, resource_prefix: str) -> NetworkAttachmentDefinition:
    """The NAD the network controller writes: the rendered config re-indented as Go's `json.Indent` with four
    spaces, and an ownerReference to the network when both share a namespace (so it is garbage-collected).

    Raises NetworkRenderError when the configuration is not JSON, naming the field that makes it so."""
    nad = render_network_attachment_raw(network, resource_prefix)
    config = nad.spec.config
    error = _json_error(config)
    if error is not None:
        problems = _field_json_problems(network)
        if problems:
            where, why = problems[0]
            raise NetworkRenderError(where, f"is not valid JSON ({why})", _FIXES[where])
        raise NetworkRenderError(
            "spec", f"the rendered CNI configuration is not valid JSON ({error})",
            "check that capabilities, ipam and metaPlugins are complete JSON values",
        )
    nad.spec.config = go_json_indent(config, "    ")
    if nad.namespace == network.namespace:
        nad.metadata.owner_references = [OwnerReference(
            api_version=network.API_VERSION, kind=network.KIND, name=network.name, uid=network.metadata.uid,
        )]
    return nad


# --- The network controller's decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyCondition:
    """The Ready condition to apply, without a timestamp (see `apply_ready_condition`)."""

    status: bool
    reason: str
    message: str
    observed_generation: int


def _ready(network: Network) -> ReadyCondition:
    return ReadyCondition(True, REASON_NETWORK_READY, MESSAGE_READY, network.metadata.generation)


def _not_ready(network: Network, reason: str, message: str) -> ReadyCondition:
    return ReadyCondition(False, reason, message, network.metadata.generation)


def write_failed_condition(network: Network, error: str) -> ReadyCondition:
    """After a failed create or replace of the NAD: upstream puts the API error text in the condition."""
    return _not_ready(network, REASON_NAD_INVALID, error)


def read_failed_condition(network: Network, error: str) -> ReadyCondition:
    """After reading the NAD failed with anything but NotFound (then retry)."""
    return _not_ready(network, REASON_NAD_NOT_FOUND, error)


def apply_ready_condition(
    conditions: Sequence[Condition], ready: ReadyCondition, now: str
) -> list[Condition] | None:
    """The conditions with Ready set, or None when nothing would change (upstream then skips the write).

    The transition time moves only when the status does, per Kubernetes convention."""
    status: Literal["True", "False"] = "True" if ready.status else "False"
    old = next((c for c in conditions if c.type == CONDITION_READY), None)
    if old is not None and (old.status, old.reason, old.message, old.observed_generation) == (
        status, ready.reason, ready.message, ready.observed_generation
    ):
        return None
    new = Condition(
        type=CONDITION_READY, status=status, reason=ready.reason, message=ready.message,
        observed_generation=ready.observed_generation,
        last_transition_time=old.last_transition_time if old is not None and old.status == status else now,
    )
    return [c for c in conditions if c.type != CONDITION_READY] + [new]


@dataclass(frozen=True)
class SetFinalizers:
    """Update the network's `metadata.finalizers` to exactly these."""

    finalizers: tuple[str, ...]


@dataclass(frozen=True)
class DeleteAttachment:
    """Delete this NAD; NotFound counts as done."""

    namespace: str
    name: str


@dataclass(frozen=True)
class AnnotateNetwork:
    """Merge-patch one annotation of the network."""

    key: str
    value: str


@dataclass(frozen=True)
class CreateAttachment:
    nad: NetworkAttachmentDefinition


@dataclass(frozen=True)
class ReplaceAttachment:
    """PUT this NAD (it carries the live object's resourceVersion)."""

    nad: NetworkAttachmentDefinition


@dataclass(frozen=True)
class SetReadyCondition:
    ready: ReadyCondition


Step: TypeAlias = (
    SetFinalizers | DeleteAttachment | AnnotateNetwork | CreateAttachment | ReplaceAttachment | SetReadyCondition
)


@dataclass(frozen=True)
class NetworkPlan:
    """What to do for one network, in order. Stop at the first failing step and retry later; when the failing step
    is a CreateAttachment or ReplaceAttachment, first set `write_failed_condition(network, <API error>)`."""

    steps: tuple[Step, ...] = ()

    @property
    def ready(self) -> ReadyCondition | None:
        return next((s.ready for s in self.steps if isinstance(s, SetReadyCondition)), None)

    @property
    def attachment(self) -> NetworkAttachmentDefinition | None:
        """The NAD to create or replace, if any."""
        return next((s.nad for s in self.steps if isinstance(s, CreateAttachment | ReplaceAttachment)), None)


def plan_network(
    network: Network,
    *,
    operator_namespace: str,
    resource_prefix: str,
    namespace_exists: bool,
    live: NetworkAttachmentDefinition | None,
) -> NetworkPlan:
    """Upstream's reconcile of one network as steps. `live` is the NAD named like the network in
    `target_namespace(network)` (None when absent); `namespace_exists` says whether that namespace exists."""
    steps: list[Step] = []
    if network.spec.network_namespace and network.namespace != operator_namespace:
        message = (
            "spec.networkNamespace cannot be set when the resource is not in the operator namespace "
            f"({operator_namespace})"
        )
        return NetworkPlan((SetReadyCondition(_not_ready(network, REASON_NAD_INVALID, message)),))

    finalizers = tuple(network.metadata.finalizers)
    if network.metadata.deletion_timestamp is not None:
        if NETATTDEF_FINALIZER not in finalizers:
            return NetworkPlan()
        remaining = tuple(f for f in finalizers if f != NETATTDEF_FINALIZER)
        return NetworkPlan((DeleteAttachment(target_namespace(network), network.name), SetFinalizers(remaining)))
    if network.namespace == operator_namespace and NETATTDEF_FINALIZER not in finalizers:
        steps.append(SetFinalizers((*finalizers, NETATTDEF_FINALIZER)))

    try:
        desired = render_network_attachment(network, resource_prefix)
    except NetworkRenderError as err:
        steps.append(SetReadyCondition(_not_ready(network, REASON_NAD_INVALID, str(err))))
        return NetworkPlan(tuple(steps))

    namespace = desired.namespace
    last = network.metadata.annotations.get(LAST_NETWORK_NAMESPACE)
    if last and last != namespace:
        steps.append(DeleteAttachment(last, network.name))
        steps.append(AnnotateNetwork(LAST_NETWORK_NAMESPACE, ""))

    if live is None:
        if not namespace_exists:
            message = f"target namespace {golang.quote(namespace)} does not exist"
            steps.append(SetReadyCondition(_not_ready(network, REASON_NAMESPACE_NOT_FOUND, message)))
            return NetworkPlan(tuple(steps))
        steps.append(CreateAttachment(desired))
        steps.append(AnnotateNetwork(LAST_NETWORK_NAMESPACE, namespace))
        steps.append(SetReadyCondition(_ready(network)))
        return NetworkPlan(tuple(steps))

    live_owner = live.metadata.annotations.get(OWNER_REF_ANNOTATION, "")
    wanted_owner = desired.metadata.annotations[OWNER_REF_ANNOTATION]
    if live_owner and live_owner != wanted_owner:
        message = (
            f"NetworkAttachmentDefinition '{namespace}/{desired.name}' already exists and is owned by {live_owner}"
        )
        steps.append(SetReadyCondition(_not_ready(network, REASON_NAD_INVALID, message)))
        return NetworkPlan(tuple(steps))
    if live.spec.config != desired.spec.config or live.metadata.annotations != desired.metadata.annotations:
        desired.metadata.resource_version = live.metadata.resource_version
        steps.append(ReplaceAttachment(desired))
    steps.append(SetReadyCondition(_ready(network)))
    return NetworkPlan(tuple(steps))
