"""The package's layers, read from its imports: each layer imports only the ones below it,
the operator and the agent meet only in ``oomguard.wire``, and no modules import each other
in a circle. Parsing the source (not importing it) sees imports inside functions too."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {  # where each top-level part of the package lives in the tree
    "oomguard.monitor": REPO / "monitor",
    "oomguard.operator": REPO / "operator",
    "oomguard.wire": REPO / "src" / "oomguard" / "wire",
}
# bottom first: a monitor package may import its own modules and the packages before it
MONITOR_LAYERS = [
    "runtime",
    "kernel",
    "systemd",
    "triggers",
    "decision",
    "kube",
    "actions",
    "feedback",
    "modes",
]
# monitor/settings.py, sizes.py and kube/list_watch.py stay only as re-exports of wire
MONITOR_SHIMS = {"oomguard.monitor.settings", "oomguard.monitor.sizes"}


def module_name(prefix: str, root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([prefix, *parts])


def package_modules() -> dict[str, Path]:
    found = {}
    for prefix, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            found[module_name(prefix, root, path)] = path
    return found


MODULES = package_modules()


def imports_of(path: Path) -> set[str]:
    """The oomguard modules ``path`` imports (``from pkg import module`` names the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("oomguard."))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oomguard."):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def layer_of(module: str) -> str:
    """``oomguard.monitor.kube.pod_ref`` -> ``monitor.kube``; ``oomguard.wire.crd`` -> ``wire``."""
    parts = module.split(".")
    if parts[1] == "monitor" and len(parts) > 3:
        return f"monitor.{parts[2]}"
    return parts[1] if parts[1] != "monitor" else "monitor"


def allowed(importer: str, imported: str) -> bool:
    here, there = layer_of(importer), layer_of(imported)
    if there == "wire":
        return True
    if here == "wire":
        return False  # the shared package speaks for both sides, so it depends on neither
    if "operator" in (here, there):
        return here == there
    if importer in MONITOR_SHIMS or here == there:
        return True
    if here == "monitor" or there == "monitor":
        return False  # nothing but the shims sits at monitor's root
    rank = {f"monitor.{name}": i for i, name in enumerate(MONITOR_LAYERS)}
    return rank[there] <= rank[here]


def test_every_monitor_package_has_a_layer():
    packages = {layer_of(m) for m in MODULES if m.startswith("oomguard.monitor.")}
    assert packages - {"monitor"} == {f"monitor.{name}" for name in MONITOR_LAYERS}


@pytest.mark.parametrize("importer", sorted(MODULES))
def test_imports_follow_the_layer_order(importer):
    wrong = sorted(m for m in GRAPH[importer] if not allowed(importer, m))
    assert not wrong, f"{importer} imports a layer above it or across sides: {wrong}"


def test_the_rule_refuses_what_it_should():
    assert not allowed("oomguard.monitor.actions.pod_evictor", "oomguard.monitor.feedback.logs")
    assert not allowed("oomguard.monitor.kernel.cgroupfs", "oomguard.monitor.triggers.trigger")
    assert not allowed("oomguard.operator.handlers", "oomguard.monitor.kube.pod_watch")
    assert not allowed("oomguard.monitor.modes.node_agent", "oomguard.operator.handlers")
    assert not allowed("oomguard.wire.crd", "oomguard.monitor.runtime.stop_signal")
    assert allowed("oomguard.monitor.modes.guard", "oomguard.monitor.runtime.stop_signal")
    assert allowed("oomguard.operator.handlers", "oomguard.wire.node_settings")


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: all of size one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in GRAPH.get(module, ()):
            if imported not in GRAPH:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles
