"""The house's layers are its folders: every module lives in one, and data flows one way (a module imports only
from its own folder or those below it; no module imports itself back through others). See the README's layout."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dopatut"
LAYERS = ["foundations", "methods", "training", "analysis", "study", "showing", "course"]  # from the bottom up


def modules() -> dict[str, Path]:
    """'layer.module' -> its file, for every module of the package outside the top-level __init__."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts != ("__init__",):
            found[".".join(parts)] = path
    return found


def imports() -> dict[str, set[str]]:
    """'layer.module' -> the 'layer.module's (or layers, for `from ..layer import x`) it imports from dopatut."""
    found = {}
    for name, path in modules().items():
        layer = name.split(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                package = [layer] if node.level == 1 and "." in name else []
                target = package + (node.module.split(".") if node.module else [])
                if not node.module or len(target) == 1:  # from . import x / from ..layer import x
                    deps |= {".".join(target + [a.name]) for a in node.names}
                else:
                    deps.add(".".join(target[:2]))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dopatut."):
                deps.add(".".join(node.module.split(".")[1:3]))
        found[name] = {d for d in deps if d != name}
    return found


def test_every_module_lives_in_a_layer_folder():
    loose = sorted(n for n in modules() if n.split(".")[0] not in LAYERS)
    assert not loose, f"modules outside the layer folders {LAYERS}: {loose}; move each into its layer"


def test_no_module_imports_from_a_layer_above_its_own():
    level = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [f"{m} imports {d}" for m, deps in imports().items() for d in deps
              if d.split(".")[0] in level and level[d.split(".")[0]] > level[m.split(".")[0]]]
    assert not upward, "imports that run up a layer:\n  " + "\n  ".join(sorted(upward))


def test_no_cycles():
    graph = imports()
    cycles = []

    def visit(node, path):
        for dep in graph.get(node, ()):
            if dep in path:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep in graph:
                visit(dep, path + [dep])
    for module in graph:
        visit(module, [module])
    assert not cycles, f"import cycles: {sorted(set(cycles))[:5]}"


def test_the_checks_see_imports():
    """The parsing above finds a known upward-free import and a known same-layer one (else it checks nothing)."""
    graph = imports()
    assert "foundations.data" in graph["training.train"] or any(d.startswith("foundations.") for d in
                                                                  graph["training.train"])
    assert "methods.gate" in graph["methods.builtin"]
