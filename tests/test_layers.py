"""The house's layers: every module has one, and data flows one way (a module imports only from its own layer or
those below it; no module imports itself back through others). See the README's layout."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dopatut"
LAYERS = {  # from the bottom up
    "foundations": ["checks", "device", "cache", "bundle", "checkpoints", "data", "model", "vit", "notebook", "tables", "figcheck"],
    "methods": ["activations", "targets", "places", "registry", "lora", "gate", "methods", "pretrained", "names"],
    "training": ["train", "stack", "workers"],
    "analysis": ["attribution", "stats", "prune", "explorer"],
    "the study": ["protocol", "pipeline", "result_cache", "search", "report", "compare", "budget", "sweeps", "context", "perf",
                  "beyond", "bundle_check"],
    "showing": ["plots", "compare_plots", "drawing", "widgets", "answer"],
    "the book's helpers": ["exercises"],
}
LEVEL = {module: level for level, modules in enumerate(LAYERS.values()) for module in modules}


def imports() -> dict[str, set[str]]:
    found = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__init__":
            continue
        nodes = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.level == 1]
        found[path.stem] = {n.module.split(".")[0] for n in nodes if n.module} | \
            {a.name for n in nodes if not n.module for a in n.names}  # from . import bundle
    return found


def test_every_module_has_a_layer():
    missing = sorted(set(imports()) - set(LEVEL))
    assert not missing, f"modules with no layer in tests/test_layers.py: {missing}; give each one its layer"


def test_no_module_imports_from_a_layer_above_its_own():
    names = list(LAYERS)
    upward = [f"{m} ({names[LEVEL[m]]}) imports {d} ({names[LEVEL[d]]})" for m, deps in imports().items()
              for d in deps if m in LEVEL and d in LEVEL and LEVEL[d] > LEVEL[m]]
    assert not upward, "imports that run up a layer:\n  " + "\n  ".join(upward)


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
