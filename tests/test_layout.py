"""The package's layout (docs/architecture.md): small modules with one job each, imports one way, and the
knowledge of kinds of task and of heads each in its one place."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xlt"
MAX_LINES = 600


def test_no_module_in_xlt_grows_past_600_lines():
    """Would catch: a module growing back into the 894-line tasks.py / 947-line report.py that issue 11 split
    by task type; past this size a module has more than one job and should be split the same way."""
    long = {str(p.relative_to(ROOT)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the xlt modules it imports, every import statement counted (function-level ones too). `from
    xlt.a import b` is an edge to xlt.a.b when that is a module, else to xlt.a."""
    modules = {module_of(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [s if s in modules else node.module for s in subs]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on:
                low[node] = min(low[node], index[child])
    return out


def test_no_import_circle_in_xlt_function_level_imports_included():
    """Would catch: a module importing one above it, even inside a function (the 9-file circle through data,
    spec, recipes, tasks and tasktypes that issue 22 opened)."""
    assert cycles(import_graph()) == []
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}   # the check itself finds a circle
    assert cycles(planted) == [["a", "b", "c"]]


def test_the_ground_floor_imports_nothing_above_it():
    """Would catch: RunSpec or the formulas reaching into tasks, recipes or models again."""
    graph = import_graph()
    ground = {"xlt.spec", "xlt.errors", "xlt.formulas", "xlt.atomic", "xlt.paths", "xlt.formats", "xlt.names"}
    assert {m: sorted(graph[m] - ground) for m in ground if graph[m] - ground} == {}
    assert not {m for m in graph["xlt.data"] if not m.startswith(("xlt.errors", "xlt.atomic"))}


def test_reports_and_the_leaderboard_import_neither_registry():
    """Would catch: a report learning metric names, captions or languages from task files or task types (a
    report would break when a task file moves, and a record of a type not installed would not render)."""
    graph = import_graph()
    readers = [m for m in graph if m.startswith("xlt.report") or m == "xlt.leaderboard"]
    offenders = {m: sorted(t for t in graph[m] if t.startswith(("xlt.tasks", "xlt.tasktypes"))) for m in readers}
    assert {m: t for m, t in offenders.items() if t} == {}
    text = "\n".join((PACKAGE / "report").joinpath(p.name).read_text() for p in (PACKAGE / "report").glob("*.py"))
    assert not re.search(r"\bimport_module\b|__import__", text)   # nor by a dynamic import


HEAD_NAMES = {"classification", "token", "qa", "encoder"}
# where a head name may be written: the head table, the task types that name their head, the model rules
# limited to heads (recipes), and the benchmarks and `models verify`, which compare a classifier on purpose
HEAD_PLACES = ("xlt/models/heads.py", "xlt/tasktypes/", "xlt/recipes.py", "xlt/bench/", "xlt/models/verify.py")


def test_head_names_are_spelled_only_in_the_head_table_and_by_what_names_a_head():
    """Would catch: a second head table (three disagreed before issue 22) or code choosing a head by name:
    a string literal that is a head's name anywhere else (docstrings may show examples)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(HEAD_PLACES):
            continue
        offenders += [f"{rel}:{node.lineno}: {node.value!r}" for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.Constant) and node.value in HEAD_NAMES]
    assert offenders == []


TYPE_TEST = re.compile(r"""(\btype|type_name|task_type|\.head|\bhead)\s*(==|!=|\bin\b)\s*[\["'(]""")


def test_no_code_outside_the_task_types_branches_on_a_type_or_a_head():
    """Would catch: `if task.type == "..."` or `if head == "..."` in runner, train, evaluate, results, reports:
    what differs between kinds of task is asked of the type, never tested by name."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(("xlt/tasktypes/", "xlt/models/heads.py", "xlt/bench/")):   # a benchmark compares
            continue                                         # against one kind of task's example script on purpose
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if TYPE_TEST.search(line) and "device" not in line and "dev.type" not in line:
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert offenders == []


def test_code_cites_only_documents_in_the_repository():
    """Would catch: a docstring sending the reader to DESIGN.md or a design file outside the repository."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for doc in re.findall(r"\b([A-Za-z_/.-]+\.md)\b", line):
                if not (ROOT / doc).is_file() and not (ROOT / "docs" / Path(doc).name).is_file():
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {doc}")
    assert offenders == []
