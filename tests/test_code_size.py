"""The code stays readable in pieces: modules, functions and parameter lists of bounded size.

A command's parameters are its command-line options (``tests/cli/test_app.py`` bounds those);
everywhere else a function that needs more than ten takes a request value object instead
(``lcmap/workflows/specs.py``).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lcmap"
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS, MAX_FMT_SKIPS = 500, 80, 10, 10


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((str(path.relative_to(PACKAGE.parent)), node))
    return found


def test_no_module_is_longer_than_500_lines() -> None:
    long = [p for p in PACKAGE.rglob("*.py") if len(p.read_text().splitlines()) > MAX_MODULE_LINES]
    assert long == []


def test_no_function_is_longer_than_80_lines() -> None:
    long = [
        f"{path}:{node.lineno} {node.name}"
        for path, node in _functions()
        if (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_function_outside_the_commands_takes_more_than_10_parameters() -> None:
    many = []
    for path, node in _functions():
        args = node.args
        names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        count = len([n for n in names if n not in ("self", "cls")])
        if count > MAX_PARAMETERS and not path.startswith("lcmap/cli/"):
            many.append(f"{path}:{node.lineno} {node.name} ({count})")
    assert many == []


def test_formatting_is_rarely_switched_off() -> None:
    skips = sum(p.read_text().count("fmt: skip") for p in PACKAGE.rglob("*.py"))
    assert skips <= MAX_FMT_SKIPS
