"""Kubernetes-facing adapters of the node agent: pods on this node, their cgroups, the reserve."""
