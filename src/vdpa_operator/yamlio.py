"""Reading and writing manifests: YAML the way Kubernetes reads it, with line numbers for error messages.

Kubernetes decodes YAML through go-yaml v2 into JSON. Its scalar rules differ from PyYAML's: `y`/`n`/`yes`/`no`/
`on`/`off` are booleans, timestamps stay strings, `1:20` is a string (no base-60), and a repeated key is an
error. This loader follows those rules and remembers where every value stood, so an error can name its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vdpa_operator.errors import VdpaOperatorError

Path_ = tuple[str | int, ...]


class ManifestError(VdpaOperatorError, ValueError):
    """Input that cannot be read as manifests: bad YAML, a repeated key, not an object. Names file and line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


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
        return sign * int(body)
    if _FLOAT.fullmatch(text):
        return float(text.replace("_", ""))
    if text in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text]
    if text in _NAN:
        return float("nan")
    return text


_PLAIN = "!vdpa-operator/plain"


class _Loader(yaml.SafeLoader):
    """Leaves plain scalars unresolved so `_plain_scalar` can apply go-yaml's rules instead of PyYAML's."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN
        return str(super().resolve(kind, value, implicit))


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


def parse_documents(text: str, source: str) -> list[Document]:
    """Every non-empty document in a YAML stream, in order."""
    docs: list[Document] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
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
        problem = err.problem or str(err)
        if err.context and err.context_mark and err.context_mark is not mark:
            problem += f" ({err.context} started at line {err.context_mark.line + 1})"
        raise ManifestError(source, line, f"invalid YAML: {problem}") from err
    except yaml.YAMLError as err:
        raise ManifestError(source, None, f"invalid YAML: {err}") from err
    return docs


def read_documents(path: str) -> list[Document]:
    """Read a file ('-' for standard input) as a YAML stream."""
    if path == "-":
        import sys

        return parse_documents(sys.stdin.read(), "<stdin>")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ManifestError(path, None, "no such file") from err
    except IsADirectoryError as err:
        raise ManifestError(path, None, "is a directory, not a manifest file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(path, None, f"cannot read: {err}") from err
    return parse_documents(text, path)


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
