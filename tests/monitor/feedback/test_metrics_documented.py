"""Every metric family the node agent exposes is in docs/metrics.md: a metric added without
its line there fails here."""

from pathlib import Path, PurePosixPath

from monitor_fakes import MI, write_cgroup
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.node_agent import AgentOptions
from oomguard.monitor.modes.node_runtime import build_agent
from oomguard.monitor.settings import NodeSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))


def test_every_node_agent_metric_is_documented(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), events_high=0)
    options = AgentOptions(cgroup_root=tmp_path, kubepods=LOC, margin_bytes=64 * MI)
    settings = NodeSettings(node_name="node-a", node_memory_bytes=1100 * MI, reserve_bytes=0)
    parts = build_agent(object(), options, settings, monitors=[], custom_api=object())
    _status, _type, body = parts.agent.metrics.route()
    exposed = {
        family.name
        for family in text_string_to_metric_families(body.decode())
        if family.name.startswith("oomguard_")
    }
    assert {"oomguard_pod_view_blind", "oomguard_kill_only_kills"} <= exposed
    doc = DOC.read_text()
    # a counter's family is documented under its sample name, `..._total`
    missing = {
        name
        for name in exposed
        if f"`{name}`" not in doc and f"`{name}_total`" not in doc and f"`{name}_bytes`" not in doc
    }
    assert missing == set()
