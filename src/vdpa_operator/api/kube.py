"""The few core and third-party kinds the operator reads or writes besides its own."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from vdpa_operator.api.meta import KubeModel, ObjectMeta, Resource


class NetworkAttachmentDefinitionSpec(KubeModel):
    config: str = ""
    """The CNI configuration, as a JSON string."""


class NetworkAttachmentDefinition(Resource):
    API_VERSION: ClassVar[str] = "k8s.cni.cncf.io/v1"
    KIND: ClassVar[str] = "NetworkAttachmentDefinition"
    PLURAL: ClassVar[str] = "network-attachment-definitions"

    spec: NetworkAttachmentDefinitionSpec = Field(default_factory=NetworkAttachmentDefinitionSpec)


class NodeSpec(KubeModel):
    """Only what the operator reads; the rest of a real Node is kept but not checked."""

    model_config = ConfigDict(extra="allow")

    provider_id: str = Field("", alias="providerID")


class Node(Resource):
    """A cluster node, as `kubectl get node -o yaml` prints it. Nodes come from the cluster, so
    fields this project does not read are accepted as they are."""

    model_config = ConfigDict(extra="allow")

    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Node"
    PLURAL: ClassVar[str] = "nodes"
    NAMESPACED: ClassVar[bool] = False

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: dict[str, Any] = Field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels


class ConfigMap(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ConfigMap"
    PLURAL: ClassVar[str] = "configmaps"

    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict, alias="binaryData")
    immutable: bool | None = None
