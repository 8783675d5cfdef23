"""How a node says it is simulated (`vdpa.sim/model`), and that a real node never is."""

from __future__ import annotations

import json

import pytest

from vdpa_operator.verify.model import SIM_MODEL_ANNOTATION, ModelAnnotationError, SimModel, sim_model


def node(annotations: dict[str, str] | None) -> dict[str, object]:
    return {"metadata": {"name": "worker-0", **({"annotations": annotations} if annotations is not None else {})}}


def test_a_node_without_the_annotation_is_real() -> None:
    assert sim_model(node(None)) is None
    assert sim_model(node({"vdpa.sim/other": "x"})) is None


def test_the_annotation_the_model_writes_reads_back() -> None:
    model = SimModel("ConnectX-6 Dx", "veth", "ovs")
    assert sim_model(node({SIM_MODEL_ANNOTATION: model.annotation()})) == model


@pytest.mark.parametrize("value", ["{", "[]", json.dumps({"nic": "x", "vdpaNetdevDriver": "veth"}),
                                   json.dumps({"nic": "x", "vdpaNetdevDriver": "", "datapath": "ovs"})])
def test_a_bad_annotation_names_the_node_and_what_is_expected(value: str) -> None:
    with pytest.raises(ModelAnnotationError, match=r"Node worker-0 annotation vdpa.sim/model: .*expected \{"):
        sim_model(node({SIM_MODEL_ANNOTATION: value}))
