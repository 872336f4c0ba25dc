"""Lines per module and the longest function, at a commit and in the working tree.

The before/after table of the architecture issue: for every module of ``lcmap/`` (at either
point), its line count and its longest function (name and lines, docstring included).

Example:
    python benchmarks/code_shape.py --before 0df2185
"""

import argparse
import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shape(text: str) -> tuple[int, str, int]:
    """(lines, longest function's name, its lines) of one module's source."""
    longest, name = 0, "-"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > longest:
                longest, name = size, node.name
    return len(text.splitlines()), name, longest


def at_commit(commit: str) -> dict[str, str]:
    """module path -> source of every ``lcmap/*.py`` at ``commit``."""
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit, "lcmap"],
                             cwd=ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    files = [f for f in listing.stdout.split() if f.endswith(".py")]
    show = ["git", "show"]
    return {
        f: subprocess.run(
            [*show, f"{commit}:{f}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        for f in files
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--changed", action="store_true", help="only modules that differ")
    args = parser.parse_args()
    before = at_commit(args.before)
    now = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "lcmap").rglob("*.py")}
    print(f"| module | lines {args.before} | lines now | longest function {args.before} | now |")
    print("|---|---|---|---|---|")
    for module in sorted(set(before) | set(now)):
        if args.changed and before.get(module) == now.get(module):
            continue
        old = shape(before[module]) if module in before else (0, "-", 0)
        new = shape(now[module]) if module in now else (0, "-", 0)
        print(f"| {module} | {old[0] or '-'} | {new[0] or '-'} | "
              f"{old[1]} {old[2] or ''} | {new[1]} {new[2] or ''} |")  # fmt: skip
    print(f"| total | {sum(len(t.splitlines()) for t in before.values())} | "
          f"{sum(len(t.splitlines()) for t in now.values())} | | |")  # fmt: skip


if __name__ == "__main__":
    main()
