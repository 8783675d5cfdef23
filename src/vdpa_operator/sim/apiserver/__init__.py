"""An embedded Kubernetes-compatible API server: real HTTP, in-memory storage, the project's CRDs.

Layers: `resources` (what is served), `store` (kube-apiserver's write rules, resourceVersions, the watch log;
no HTTP), `authn` and `rbac` (who asks, what they may do), `server` (aiohttp handlers: URLs, discovery, watch
streams), `inthread` (run it beside a test), `kubeconfigs` (what clients are handed).

    with serve_in_thread(tmp_path / "kubeconfig") as api:
        client = lightkube.AsyncClient(KubeConfig.from_file(api.kubeconfig_path))
"""

from vdpa_operator.sim.apiserver.errors import StatusError
from vdpa_operator.sim.apiserver.inthread import ServerHandle, default_store, serve_in_thread
from vdpa_operator.sim.apiserver.kubeconfigs import kubeconfig, write_kubeconfig
from vdpa_operator.sim.apiserver.resources import CORE_TYPES, ResourceType, project_crds, types_from_crd
from vdpa_operator.sim.apiserver.server import make_app, start
from vdpa_operator.sim.apiserver.store import Store, WatchEvent

__all__ = [
    "CORE_TYPES",
    "ResourceType",
    "ServerHandle",
    "StatusError",
    "Store",
    "WatchEvent",
    "default_store",
    "kubeconfig",
    "make_app",
    "project_crds",
    "serve_in_thread",
    "start",
    "types_from_crd",
    "write_kubeconfig",
]
