"""The custom resources' API group, version and plural names (the CRDs in helm/oomguard/crds)."""

GROUP = "oomguard.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
RESERVE_KIND = "NodeMemoryReserve"
RESERVE_PLURAL = "nodememoryreserves"
POLICY_PLURAL = "memoryreservepolicies"
