"""Kubernetes object metadata and the base class every API model shares.

Models are strict the way the API server's strict decoding is: an unknown field or a value of the wrong JSON
type is an error, never coerced. Python attribute names are snake_case; the JSON names are the aliases.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class KubeModel(BaseModel):
    """Base for every API value: strict, aliases on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        frozen=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as it was written: every field that was set, nothing that was not (round trip)."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def to_go_dict(self) -> dict[str, Any]:
        """The object as upstream's Go code would marshal it: `omitempty` zero values left out."""
        return self.model_dump(by_alias=True, exclude_defaults=True, mode="json")


class OwnerReference(KubeModel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = Field(None, alias="blockOwnerDeletion")


class ObjectMeta(KubeModel):
    """`metav1.ObjectMeta`, every field a client may send."""

    name: str = ""
    generate_name: str = Field("", alias="generateName")
    namespace: str = ""
    self_link: str = Field("", alias="selfLink")
    uid: str = ""
    resource_version: str = Field("", alias="resourceVersion")
    generation: int = 0
    creation_timestamp: str | None = Field(None, alias="creationTimestamp")
    deletion_timestamp: str | None = Field(None, alias="deletionTimestamp")
    deletion_grace_period_seconds: int | None = Field(None, alias="deletionGracePeriodSeconds")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list, alias="ownerReferences")
    finalizers: list[str] = Field(default_factory=list)
    managed_fields: list[dict[str, Any]] = Field(default_factory=list, alias="managedFields")


_CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class Condition(KubeModel):
    """`metav1.Condition`, with the bounds the API server enforces on it."""

    type: str = Field(max_length=316, pattern=_CONDITION_TYPE)
    """Type of condition in CamelCase, e.g. Ready."""
    status: Literal["True", "False", "Unknown"]
    """Status of the condition."""
    observed_generation: int = Field(0, ge=0, alias="observedGeneration", json_schema_extra={"format": "int64"})
    """The .metadata.generation the condition was set for."""
    last_transition_time: str = Field(alias="lastTransitionTime", json_schema_extra={"format": "date-time"})
    """When the condition last changed from one status to another."""
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Programmatic identifier of the reason for the last transition."""
    message: str = Field(max_length=32768)
    """Human-readable details of the transition."""


class ConditionStatus(KubeModel):
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Latest observations of the object's state."""


class Resource(KubeModel):
    """A top-level object: apiVersion, kind, metadata, and the kind's own spec/status."""

    API_VERSION: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True

    api_version: str = Field("", alias="apiVersion")
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
