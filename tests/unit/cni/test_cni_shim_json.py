"""The shim's JSON (the C accelerator without the `json` module, for a fast start) reads and writes what the
`json` module does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vdpa_operator.cni.shim import dumps, loads

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
VALUES = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=20)


@given(VALUES)
def test_reads_and_writes_as_the_json_module(value: object) -> None:
    assert loads(json.dumps(value)) == value
    assert json.loads(dumps(value)) == value


@pytest.mark.parametrize("text", ["{not json", "[1, x]", '{"a" 1}', "", "1 2", '{"a": 1} x'])
def test_bad_documents_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text)


def test_floats_and_whitespace() -> None:
    assert loads(' \n{"mtu": 1.5, "n": NaN} ') == {"mtu": 1.5, "n": pytest.approx(float("nan"), nan_ok=True)}
