"""The package's shape, as the architecture asks of it: layers import downwards only, the import chain from the
CLI stays short, the per-worker loop stays light, and no module, function or class grows past what one can read."""

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "gansweep"
MAX_CHAIN = 9  # modules, the CLI and the leaf included
MAX_LINES = 120  # a function or class
MAX_MODULE_LINES = 500
# Lower layers first (storage: locations, the bottom of everything that reads or writes a file); a module may import
# its own layer and those before it. config checks names and values against the modules that implement them (nets,
# data), so those sit below it; what needs a Config (the run's training set) sits in run.
LAYERS = ("storage", "nets", "data", "config", "gan", "evaluation", "run", "sweep", "tools", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@functools.cache
def imports_of(module: str) -> frozenset[str]:
    """The package modules MODULE imports, at its top or inside functions (both run), not under TYPE_CHECKING."""
    tree = ast.parse(MODULES[module].read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("gansweep.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gansweep"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return frozenset(name for name in found if name in MODULES and not MODULES[name].name == "__init__.py")


def longest_chain(module: str, seen: tuple = ()) -> list[str]:
    if module in seen:
        raise AssertionError(f"import cycle: {' -> '.join(seen + (module,))}")
    chains = [longest_chain(child, seen + (module,)) for child in imports_of(module)]
    return [module, *max(chains, key=len, default=[])]


def _layer(module: str) -> int:
    name = module.removeprefix("gansweep.")
    matching = [layer for layer in LAYERS if name == layer or name.startswith(layer + ".")]
    return LAYERS.index(max(matching, key=len))  # the most specific


def test_the_import_chain_from_the_cli_is_at_most_nine_modules():
    chain = longest_chain("gansweep.cli")
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


def test_no_module_imports_a_layer_above_its_own():
    upward = [(module, imported) for module in MODULES if module != "gansweep"
              for imported in imports_of(module) if _layer(imported) > _layer(module)]
    assert upward == []


def test_no_function_or_class_is_longer_than_120_lines():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_no_module_is_longer_than_500_lines():
    long = {module: n for module, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


@pytest.mark.parametrize("heavy", ["cv2", "skimage", "gansweep.evaluation.inception", "gansweep.run.evaluate"])
def test_the_per_worker_loop_imports_no_heavy_or_unrelated_module(heavy):
    code = f"import sys, gansweep.run.loop; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
