"""Item 11 of "do no harm": the agents never evict or kill oomguard's own pods: the
operator, which serves the eviction webhook, shares the agent's namespace."""

from pathlib import Path, PurePosixPath

from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.node_options import AgentOptions, protection_rules
from oomguard.monitor.settings import default_node_settings

LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))


def test_the_agents_own_namespace_is_protected_whatever_the_settings():
    options = AgentOptions(Path("/"), LOC, self_key="oomguard-system/oomguard-agent-x1")
    rules = protection_rules(options, default_node_settings("node-a", 2**33))
    assert rules.protected_namespaces == {"kube-system", "oomguard-system"}


def test_without_a_known_namespace_only_the_settings_count():
    rules = protection_rules(AgentOptions(Path("/"), LOC), default_node_settings("node-a", 2**33))
    assert rules.protected_namespaces == {"kube-system"}
