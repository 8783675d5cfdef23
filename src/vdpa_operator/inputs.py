"""Reading manifest files into decoded objects, with every error pointing at its file and line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from vdpa_operator import yamlio
from vdpa_operator.api.decoding import Decoded, DecodeError, decode, json_path
from vdpa_operator.api.meta import Resource
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS, NicTableError, SupportedNics
from vdpa_operator.bounded import LimitExceeded
from vdpa_operator.errors import VdpaOperatorError

R = TypeVar("R", bound=Resource)


class InputError(VdpaOperatorError, ValueError):
    """Input that cannot be used; `lines` are complete messages, each naming file and line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class Located:
    """A decoded object and where it came from."""

    decoded: Decoded
    source: str
    line: int
    issue_lines: tuple[int, ...] = ()
    """The line of each of `decoded.schema_issues`."""


def load(paths: Sequence[str], *, lenient: bool = False) -> list[Located]:
    """Every object of every file, in order. All errors of all files are collected before raising.

    `lenient` (for objects dumped from a cluster) drops unknown fields with a note instead of refusing them.
    """
    found: list[Located] = []
    errors: list[str] = []
    for path in paths:
        try:
            documents = yamlio.read_documents(path)
        except yamlio.ManifestError as err:
            errors.append(str(err))
            continue
        for doc in documents:
            for item, prefix in yamlio.iter_items(doc.value):
                try:
                    decoded = decode(item, lenient=lenient)
                    issue_lines = tuple(doc.line_of((*prefix, *i.loc)) for i in decoded.schema_issues)
                    found.append(Located(decoded, doc.source, doc.line_of(prefix), issue_lines))
                except DecodeError as err:
                    errors.extend(_describe(err, doc, prefix))
    if errors:
        raise InputError(errors)
    return found


def _describe(err: DecodeError, doc: yamlio.Document, prefix: yamlio.Path_) -> list[str]:
    what = f'{err.kind} "{err.name}"' if err.name else (err.kind or "object")
    lines = []
    for issue in err.issues:
        line = doc.line_of((*prefix, *issue.loc))
        text = f'unknown field "{json_path(issue.loc)}"' if issue.message == "unknown field" else str(issue)
        lines.append(f"{doc.source}:{line}: {what}: {text}")
    return lines


def only(objects: Sequence[Located], kind: type[R], option: str) -> list[R]:
    """The objects of one kind, for options like --nodes that accept nothing else."""
    wrong = [o for o in objects if o.decoded.model is not kind]
    if wrong:
        raise InputError([
            f"{o.source}:{o.line}: {option} takes {kind.KIND} objects, this is a {o.decoded.kind}" for o in wrong
        ])
    rejected = [o for o in objects if o.decoded.obj is None]
    if rejected:
        raise InputError([
            f"{o.source}:{line}: {o.decoded.kind} \"{o.decoded.name}\": {issue}"
            for o in rejected for issue, line in zip(o.decoded.schema_issues, o.issue_lines, strict=True)
        ])
    return [o.decoded.obj for o in objects if isinstance(o.decoded.obj, kind)]


def supported_nics(path: str | None) -> SupportedNics:
    """The built-in table, or a `supported-nic-ids` ConfigMap / plain list ("15b3 101d 101e" per line) file."""
    if path is None:
        return DEFAULT_SUPPORTED_NICS
    try:
        text = yamlio.read_text(path)
    except yamlio.ManifestError as err:
        raise InputError([f"{err.source}: cannot read the supported NIC list: {err.message}"]) from err
    try:
        docs = yamlio.parse_documents(text, path)
        value = docs[0].value if len(docs) == 1 else None
        if isinstance(value, dict) and value.get("kind") == "ConfigMap":
            data = value.get("data") or {}
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise InputError([f"{path}: ConfigMap data must map names to '<vendor> <pf> <vf>' strings"])
            return SupportedNics.from_configmap_data(data, source=path)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return SupportedNics.parse(value, source=path)
    except LimitExceeded as err:
        raise InputError([str(err)]) from err
    except yamlio.ManifestError:
        pass  # not YAML: the plain list
    except NicTableError as err:
        raise InputError([str(err)]) from err
    try:
        return SupportedNics.parse(text.splitlines(), source=path)
    except NicTableError as err:
        raise InputError([str(err)]) from err
