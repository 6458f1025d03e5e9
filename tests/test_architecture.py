"""The package's shape: generic layers name no task, the transformer imports no env/task/sim code, and
no module imports another that imports it back (checked on every import, top-level or in a function)."""

import ast
import re
from pathlib import Path

import cosmos3_robot

ROOT = Path(cosmos3_robot.__file__).parent
TASK_WORDS = re.compile(r"pusht|push_t|\btee\b|t_block|coverage|franka|\bcube|aloha", re.IGNORECASE)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Modules of this package that `path` imports (relative or absolute, anywhere in the file)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import pusht` imports a submodule
                candidate = f"{target}.{alias.name}"
                out.add(candidate if module_path(candidate) else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("cosmos3_robot") and module_path(m)}


def module_path(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for p in (ROOT / rel / "__init__.py", (ROOT / rel).with_suffix(".py")):
        if p.is_file():
            return p
    return None


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in ROOT.rglob("*.py")}


GENERIC = ("sim", "backends", "eval", "lerobot_plugin", "viz", "serve", "policies", "datasets", "model", "train",
           "embodiments")


def code_words(path: Path):
    """(line, word) of everything a module's code says: names, attributes, arguments, imports and string
    literals; comments and docstrings are prose, not code, and are left out."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
            and isinstance(n.body[0].value.value, str)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            yield n.lineno, n.value
        elif isinstance(n, ast.Name):
            yield n.lineno, n.id
        elif isinstance(n, ast.Attribute):
            yield n.lineno, n.attr
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield n.lineno, n.name
        elif isinstance(n, ast.arg):
            yield n.lineno, n.arg
        elif isinstance(n, ast.ImportFrom) and n.module:
            yield n.lineno, n.module
        elif isinstance(n, ast.alias):
            yield n.lineno, n.name


def test_generic_layers_name_no_task():
    """No generic code names a task (tasks/ and the spec files do): every subpackage but tasks, and the package's
    own modules (cli.py, registration.py)."""
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} - set(GENERIC) == {
        "tasks"}, "a new subpackage: add it to GENERIC or say why it may name a task"
    hits = []
    for path in [*ROOT.glob("*.py"), *(p for sub in GENERIC for p in (ROOT / sub).rglob("*.py"))]:  # cli.py too
        rel = str(path.relative_to(ROOT))
        for line, word in code_words(path):
            if TASK_WORDS.search(word):
                hits.append(f"{rel}:{line}: {word[:100]!r}")
    assert not hits, "\n".join(hits)


def test_model_imports_no_env_task_or_sim_code():
    g = graph()
    bad = {m: sorted(d for d in deps if d.split(".")[1] in ("sim", "tasks", "backends", "eval", "policies", "envs"))
           for m, deps in g.items() if m.startswith("cosmos3_robot.model")}
    assert not any(bad.values()), bad


def test_no_import_cycle():
    g = graph()
    # a package's __init__ re-exports its own submodules: that edge is not a dependency back
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in g.items()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            visit(d)
        stack.pop()

    for m in sorted(edges):
        visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:10])
