"""The simulated cluster: an embedded Kubernetes-compatible API server (`sim.apiserver`) that real clients
(lightkube, kubectl) talk to over HTTP, so cluster-facing code is tested without a cluster."""
