"""`Store.write` runs admission where kube-apiserver does: mutating after decoding and defaulting, validating
after the strategy and schema validation, and the commit guarded by the resourceVersion read at the start (a
write that lost a race is run again, admission included)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vdpa_operator.sim.apiserver import StatusError, default_store
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES
from vdpa_operator.sim.apiserver.store import AdmissionAttributes, Store, Write

NS = "openshift-sriov-network-operator"
MERGE = "application/merge-patch+json"


def policy(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"resourceName": "r", "numVfs": 2, "nodeSelector": {},
                                                "nicSelector": {}, **spec}}


class Recorder:
    """Admission that records what it saw and may change, refuse or race."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = []
        self.mutation: dict[str, Any] = {}
        self.refuse = False
        self.race: Any = None

    async def mutate(self, attrs: AdmissionAttributes) -> dict[str, Any] | None:
        self.seen.append(("mutate", attrs.operation, attrs.object, attrs.old_object))
        if self.race is not None:
            race, self.race = self.race, None
            race()
        if attrs.object is None or not self.mutation:
            return None
        return {**attrs.object, "spec": {**attrs.object["spec"], **self.mutation}}

    def validate(self, attrs: AdmissionAttributes) -> None:
        self.seen.append(("validate", attrs.operation, attrs.object, attrs.old_object))
        if self.refuse:
            attrs.warnings.append("refused by the test")
            raise StatusError(403, "Forbidden", "admission says no")


@pytest.fixture
def store() -> Store:
    return default_store(namespaces=(*BUILTIN_NAMESPACES, NS))


def policies(store: Store) -> Any:
    return store.registry.lookup("sriovnetwork.openshift.io", "v1", "sriovnetworknodepolicies")


def test_mutation_sees_defaults_and_is_decoded_again_validation_sees_the_final_object(store: Store) -> None:
    admission = Recorder()
    admission.mutation = {"mtu": 9000, "notInSchema": True}
    created = asyncio.run(store.write(Write("create", policies(store), NS, body=policy()), admission))
    (_, op, mutated_in, _), (_, _, validated, _) = admission.seen
    assert op == "CREATE" and mutated_in is not None and mutated_in["spec"]["deviceType"] == "netdevice"
    assert "uid" not in mutated_in["metadata"]  # the create strategy runs after mutating admission
    assert validated is not None and validated["metadata"]["uid"] == created["metadata"]["uid"]
    assert created["spec"]["mtu"] == 9000 and "notInSchema" not in created["spec"]


def test_schema_validation_runs_after_mutation_and_before_validating_admission(store: Store) -> None:
    admission = Recorder()
    admission.mutation = {"deviceType": "bogus"}
    with pytest.raises(StatusError) as invalid:
        asyncio.run(store.write(Write("create", policies(store), NS, body=policy()), admission))
    assert invalid.value.code == 422
    assert [step for step, *_ in admission.seen] == ["mutate"]

    admission = Recorder()
    admission.refuse = True
    request = Write("create", policies(store), NS, body=policy())
    with pytest.raises(StatusError, match="admission says no"):
        asyncio.run(store.write(request, admission))
    assert request.warnings == ["refused by the test"]
    assert store.list(policies(store), NS, lambda obj: True)[0] == []


def test_a_write_that_lost_a_race_during_admission_runs_again(store: Store) -> None:
    rtype = policies(store)
    store.create(rtype, NS, policy())
    admission = Recorder()
    admission.race = lambda: store.patch(rtype, NS, "p", MERGE, {"metadata": {"labels": {"other": "writer"}}})
    patched = asyncio.run(store.write(Write("patch", rtype, NS, "p", {"spec": {"numVfs": 6}},
                                            content_type=MERGE), admission))
    assert patched["spec"]["numVfs"] == 6 and patched["metadata"]["labels"] == {"other": "writer"}
    assert [op for step, op, *_ in admission.seen if step == "mutate"] == ["UPDATE", "UPDATE"]

    current = store.get(rtype, NS, "p")
    admission.race = lambda: store.patch(rtype, NS, "p", MERGE, {"metadata": {"labels": {"again": "x"}}})
    with pytest.raises(StatusError) as conflict:  # a PUT names its version: it is not retried but refused
        asyncio.run(store.write(Write("update", rtype, NS, "p", {**current, "spec": {**current["spec"],
                                                                                     "numVfs": 1}}), admission))
    assert conflict.value.code == 409


def test_delete_admission_sees_the_old_object_only(store: Store) -> None:
    rtype = policies(store)
    store.create(rtype, NS, policy())
    admission = Recorder()
    asyncio.run(store.write(Write("delete", rtype, NS, "p"), admission))
    assert [(step, op, new is None, old is not None) for step, op, new, old in admission.seen] == [
        ("mutate", "DELETE", True, True), ("validate", "DELETE", True, True)]
