"""Reading and writing manifests: YAML the way Kubernetes reads it, with line numbers for error messages.

Kubernetes decodes YAML through go-yaml v2 into JSON. Its scalar rules differ from PyYAML's: `y`/`n`/`yes`/`no`/
`on`/`off` are booleans, timestamps stay strings, `1:20` is a string (no base-60), and a repeated key is an
error. This loader follows those rules and remembers where every value stood, so an error can name its line.

It is the project's one YAML loader for text it did not write, and keeps `bounded.Limits` while it composes:
size, nesting depth, values, aliases and the values aliases copy in (each alias counts the whole subtree it
stands for, so a billion-laughs document is refused after a few hundred events, before anything is expanded).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from vdpa_operator.bounded import DEFAULT_LIMITS, LimitExceeded, Limits, ParseError, check_size, loads_json, too_deep

Path_ = tuple[str | int, ...]

ManifestError = ParseError
"""Input that cannot be read as manifests: bad YAML, a repeated key, a limit crossed. Names file and line."""


@dataclass
class Document:
    """One YAML document: its JSON-like value and the line (1-based) of every path in it."""

    source: str
    value: Any
    line: int
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """The line of a path, or of its nearest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


_BOOL_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_BOOL_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
_NULL = {"", "~", "null", "Null", "NULL"}
_INT = re.compile(r"[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
                  "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
                  "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf")}
_NAN = {".nan", ".NaN", ".NAN"}


def _plain_scalar(text: str) -> Any:
    """Resolve an unquoted scalar as go-yaml v2 does."""
    if text in _NULL:
        return None
    if text in _BOOL_TRUE:
        return True
    if text in _BOOL_FALSE:
        return False
    if _INT.fullmatch(text):
        digits = text.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        body = digits.lstrip("+-")
        if body.startswith(("0b", "0x", "0o")):
            return sign * int(body, 0)
        if len(body) > 1 and body.startswith("0"):
            return sign * int(body, 8)
        try:
            return sign * int(body)
        except ValueError:  # over Python's 4300 digits: beyond a float too, so go-yaml keeps it a string
            return text
    if _FLOAT.fullmatch(text):
        return float(text.replace("_", ""))
    if text in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text]
    if text in _NAN:
        return float("nan")
    return text


_PLAIN = "!vdpa-operator/plain"


# Events from libyaml's parser where PyYAML has it (5-7 times faster than its pure-Python one); the composing,
# where the limits are kept, stays in Python either way.
try:
    from yaml._yaml import CParser as _Parser
except ImportError:
    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _Loader(yaml.composer.Composer, _Parser, yaml.resolver.Resolver):
    """Leaves plain scalars unresolved so `_plain_scalar` can apply go-yaml's rules instead of PyYAML's, and keeps
    `Limits` while composing: every node gets a weight (the values it stands for once aliases are expanded), so
    an alias costs what it would copy, counted before anything is copied."""

    def __init__(self, text: str, source: str, limits: Limits) -> None:
        _Parser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.source = source
        self.limits = limits
        self.depth = 0
        self.nodes = 0
        self.aliases = 0
        self.alias_nodes = 0
        self.weights: dict[int, int] = {}

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        mark = event.start_mark if event is not None else None
        line = mark.line + 1 if mark is not None else None
        if self.check_event(yaml.AliasEvent):
            return self._alias(parent, index, line)
        levels = 1 if self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent) else 0
        self.depth += levels
        if self.depth > self.limits.max_depth:
            raise too_deep(self.source, line, self.limits)
        node = super().compose_node(parent, index)
        self.depth -= levels
        self.weights[id(node)] = sum((self.weights[id(child)] for child in _children(node)), 1)
        self.nodes += 1
        self._check_nodes(line)
        return node

    def _alias(self, parent: yaml.Node | None, index: Any, line: int | None) -> yaml.Node | None:
        self.aliases += 1
        if self.aliases > self.limits.max_aliases:
            raise LimitExceeded(self.source, line, f"more than {self.limits.max_aliases} YAML aliases (*name); "
                                                   "write the values out instead")
        node = super().compose_node(parent, index)
        weight = self.weights.get(id(node))
        if weight is None:
            raise ParseError(self.source, line, "an alias inside the value it names (a recursive alias) has no "
                                                "JSON form; remove it")
        self.alias_nodes += weight
        self.nodes += weight
        if self.alias_nodes > self.limits.max_alias_nodes:
            raise LimitExceeded(self.source, line, f"YAML aliases expand to more than "
                                                   f"{self.limits.max_alias_nodes} values; write the values out "
                                                   "or alias smaller ones")
        self._check_nodes(line)
        return node

    def next_document(self) -> None:
        """Anchors do not cross documents, so neither do the alias limits; `max_nodes` holds for the stream."""
        self.weights.clear()
        self.aliases = self.alias_nodes = 0

    def _check_nodes(self, line: int | None) -> None:
        if self.nodes > self.limits.max_nodes:
            raise LimitExceeded(self.source, line, f"more than {self.limits.max_nodes} values; split the input "
                                                   "into smaller documents")


def _children(node: yaml.Node | None) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        raise ManifestError(self.source, node.start_mark.line + 1, "unsupported YAML node")

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _PLAIN:
            return _plain_scalar(node.value)
        if node.tag == "tag:yaml.org,2002:int":
            return _plain_scalar(node.value) if _INT.fullmatch(node.value) else node.value
        if node.tag == "tag:yaml.org,2002:bool":
            return node.value in _BOOL_TRUE
        if node.tag == "tag:yaml.org,2002:null":
            return None
        return node.value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = self.build(value_node, path)
                for part in merged if isinstance(merged, list) else [merged]:
                    if isinstance(part, dict):
                        for k, v in part.items():
                            out.setdefault(k, v)
                continue
            key = self.build(key_node, (*path, "<key>"))
            if not isinstance(key, str):
                key = _json_key(key)
            if key in out:
                raise ManifestError(
                    self.source, key_node.start_mark.line + 1, f'mapping key "{key}" already defined'
                )
            out[key] = self.build(value_node, (*path, key))
            self.lines[(*path, key)] = key_node.start_mark.line + 1
        self.lines.pop((*path, "<key>"), None)
        return out


def _json_key(key: Any) -> str:
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key)


def parse_documents(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> list[Document]:
    """Every non-empty document in a YAML stream, in order."""
    check_size(len(text), source, limits)
    docs: list[Document] = []
    loader = _Loader(text, source, limits)
    try:
        while loader.check_node():
            node = loader.get_node()
            loader.next_document()
            if node is None:
                continue
            builder = _Builder(source)
            value = builder.build(node, ())
            if value is None:
                continue
            docs.append(Document(source, value, node.start_mark.line + 1, builder.lines))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        if line and "maximum nesting depth" in (err.problem or ""):  # libyaml's own limit (1000), met first
            raise too_deep(source, line, limits) from None                # when it scans ahead of the composer
        problem = err.problem or str(err)
        if err.context and err.context_mark and err.context_mark is not mark:
            problem += f" ({err.context} started at line {err.context_mark.line + 1})"
        raise ManifestError(source, line, f"invalid YAML: {problem}") from err
    except yaml.YAMLError as err:
        raise ManifestError(source, None, f"invalid YAML: {err}") from err
    finally:
        loader.dispose()
    return docs


def load_one(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The value of a text that holds one document, JSON or YAML (a server-side apply body): JSON, what clients
    send, is read by the JSON decoder, many times faster than PyYAML; anything else as YAML."""
    if text.lstrip().startswith("{"):
        try:
            return loads_json(text, source, limits)
        except LimitExceeded:
            raise
        except ParseError:
            pass  # YAML's flow style starts with "{" too
    docs = parse_documents(text, source, limits)
    if len(docs) > 1:
        raise ManifestError(source, docs[1].line, "expected one document, found more")
    return docs[0].value if docs else None


def read_text(path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """A file's text ('-' for standard input), refused unread beyond `limits.max_bytes`."""
    source = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            import sys

            data = sys.stdin.buffer.read(limits.max_bytes + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limits.max_bytes + 1)
    except FileNotFoundError as err:
        raise ManifestError(path, None, "no such file") from err
    except IsADirectoryError as err:
        raise ManifestError(path, None, "is a directory, not a manifest file") from err
    except OSError as err:
        raise ManifestError(path, None, f"cannot read: {err.strerror or err}") from err
    if len(data) > limits.max_bytes:
        raise LimitExceeded(source, None, f"more than the limit of {limits.max_bytes} bytes; split the input "
                                          "into smaller files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(source, None, f"cannot read: not UTF-8 text (byte {err.start})") from err


def read_documents(path: str, limits: Limits = DEFAULT_LIMITS) -> list[Document]:
    """Read a file ('-' for standard input) as a YAML stream."""
    return parse_documents(read_text(path, limits), "<stdin>" if path == "-" else path, limits)


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the order given, strings that look like other types quoted."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    style = None
    if _plain_scalar(data) != data or data != data.strip():
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(value: Any) -> str:
    """One document as YAML, stable across runs (keys keep their order)."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16,
                     allow_unicode=True)


def dump_yaml_documents(values: list[Any]) -> str:
    """A multi-document YAML stream, each document starting with `---`."""
    return "".join("---\n" + dump_yaml(v) for v in values)


def iter_items(doc: Any) -> Iterator[tuple[Any, Path_]]:
    """A document's objects: the items of a `List`/`*List`, or the document itself."""
    if isinstance(doc, dict) and isinstance(doc.get("items"), list) and str(doc.get("kind", "")).endswith("List"):
        for i, item in enumerate(doc["items"]):
            yield item, ("items", i)
    else:
        yield doc, ()
