"""The fuzz harness's worker: mutated scenes and model files through ``lcmap segment``.

Run by ``tests/fuzz/test_fuzz.py`` in a subprocess of its own, so that a crash of GDAL or torch
on a hostile file fails the test instead of killing the test run. Prints one JSON line per case.

Usage: python cases.py WORKDIR SCENE MODEL COUNT SEED
"""

import json
import random
import sys
from pathlib import Path


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A truncation, a burst of byte flips in the header, or flips anywhere."""
    kind = rng.choice(["truncate", "header", "anywhere"])
    buf = bytearray(data)
    if kind == "truncate":
        return kind, bytes(buf[: rng.randrange(0, len(buf))])
    span = min(len(buf), 512) if kind == "header" else len(buf)
    for _ in range(rng.randint(1, 16)):
        buf[rng.randrange(span)] = rng.randrange(256)
    return kind, bytes(buf)


def main() -> None:
    import contextlib
    import io

    from typer.testing import CliRunner

    from lcmap.cli import app

    work, scene, model = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    count, seed = int(sys.argv[4]), int(sys.argv[5])
    rng = random.Random(seed)
    runner = CliRunner()
    originals = {"scene": scene.read_bytes(), "model": model.read_bytes()}
    for i in range(count):
        target = "scene" if i % 2 == 0 else "model"
        kind, data = mutate(originals[target], rng)
        case = work / f"case{i}"
        case.mkdir()
        bad = case / ("scene.tif" if target == "scene" else "model.lcmap")
        bad.write_bytes(data)
        args = [
            "segment",
            str(bad if target == "scene" else scene),
            "-o",
            str(case / "m.tif"),
            "-q",
        ] + (["--model", str(bad)] if target == "model" else ["-k", "3"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            result = runner.invoke(app, args)
        print(
            json.dumps(
                {
                    "case": i,
                    "target": target,
                    "kind": kind,
                    "exit": result.exit_code,
                    "output": result.output + err.getvalue(),
                    "exception": repr(result.exception) if result.exit_code not in (0, 1) else None,
                    "files": sorted(p.name for p in case.iterdir()),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
