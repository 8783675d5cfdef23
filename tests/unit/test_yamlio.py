"""YAML is read with go-yaml v2's scalar rules (what kubectl and the API server use), not PyYAML's."""

from __future__ import annotations

import pytest

from vdpa_operator import yamlio


def value_of(text: str) -> object:
    return yamlio.parse_documents(f"v: {text}\n", "t")[0].value["v"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on", True), ("yes", True), ("Y", True), ("off", False), ("no", False), ("n", False),
        ("true", True), ("False", False), ("~", None), ("null", None),
        ("8086", 8086), ("0777", 511), ("0x1F", 31), ("-12", -12), ("1e3", 1000.0), ("1.5", 1.5),
        ("15b3", "15b3"), ("101d", "101d"), ("0000:65:00.0", "0000:65:00.0"), ("1:20", "1:20"),
        ("2026-11-25", "2026-11-25"), ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z"),
        ('"8086"', "8086"), ("'on'", "on"), ("!!str 12", "12"),
    ],
)
def test_scalars(text: str, expected: object) -> None:
    assert value_of(text) == expected
    assert type(value_of(text)) is type(expected)


def test_duplicate_key_is_an_error_with_its_line() -> None:
    with pytest.raises(yamlio.ManifestError, match=r'^t:3: mapping key "a" already defined'):
        yamlio.parse_documents("a: 1\nb: 2\na: 3\n", "t")


def test_lines_of_nested_paths() -> None:
    doc = yamlio.parse_documents("---\nspec:\n  nicSelector:\n    pfNames:\n    - ens1f0\n", "t")[0]
    assert doc.line_of(("spec", "nicSelector")) == 3
    assert doc.line_of(("spec", "nicSelector", "pfNames", 0)) == 5
    assert doc.line_of(("spec", "nicSelector", "missing")) == 3


def test_empty_documents_are_skipped_and_lists_unwrapped() -> None:
    docs = yamlio.parse_documents("---\n---\nkind: List\napiVersion: v1\nitems:\n- a: 1\n- a: 2\n", "t")
    assert len(docs) == 1
    assert [item for item, _ in yamlio.iter_items(docs[0].value)] == [{"a": 1}, {"a": 2}]


def test_dump_quotes_strings_that_would_read_back_as_other_types() -> None:
    value = {"a": "on", "b": "8086", "c": "15b3", "d": "", "e": "x\ny"}
    assert yamlio.parse_documents(yamlio.dump_yaml(value), "t")[0].value == value
