"""Signals at chosen moments: the exit status and the message say what is on disk.

The command runs in a child process that sends itself a signal right after a chosen output is
renamed into place, or right after the block publishing it ends, so the moment is exact, not a
race.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import contextlib, os, signal, sys
    from pathlib import Path
    from lcmap.io import staging

    when, after, signum = sys.argv[1], sys.argv[2], int(sys.argv[3])
    original_publish, original_committing = staging.publish, staging.committing

    def publish(tmp, target):
        original_publish(tmp, target)
        if when == "renamed" and Path(target).name == after:
            os.kill(os.getpid(), signum)

    @contextlib.contextmanager
    def committing():
        with original_committing():
            yield
        if when == "committed" and after in {p.name for p in staging.published()}:
            os.kill(os.getpid(), signum)

    # before lcmap's writers import them
    staging.publish, staging.committing = publish, committing
    from lcmap.cli import main

    sys.argv = ["lcmap", *sys.argv[4:]]
    main()
    """
)


def _run(when, after, signum, *args):
    """Run lcmap with ``signum`` sent as soon as ``after`` is renamed into place (``when`` =
    "renamed") or once the publication block holding it has ended ("committed")."""
    return subprocess.run(
        [sys.executable, "-c", CHILD, when, after, str(int(signum)), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_last_output_is_published_reports_success(make_scene, tmp_path, signum):
    scene = make_scene()
    out = tmp_path / "m.tif"
    # m.lcmap.json is the map's last file: the signal comes with everything in place.
    done = _run("committed", "m.lcmap.json", signum, "segment", scene, "-o", out, "-k", "3")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "no output was written" not in done.stderr
    assert "after the outputs were complete" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.lcmap.json",
        "m.qml",
        "m.tif",
        "m.tif.aux.xml",
        "scene.tif",
    ]


def test_a_signal_during_publication_completes_the_map_and_its_sidecars(make_scene, tmp_path):
    scene = make_scene()
    # The signal comes after the map itself, before its two sidecars are renamed.
    done = _run(
        "renamed", "m.tif", signal.SIGTERM, "segment", scene, "-o", tmp_path / "m.tif", "-k", "3"
    )
    assert done.returncode == 0, done.stderr
    assert {"m.tif", "m.tif.aux.xml", "m.qml", "m.lcmap.json"} <= {
        p.name for p in tmp_path.iterdir()
    }


def test_a_signal_between_two_outputs_names_the_complete_one(make_scene, tmp_path):
    """The map is published before the model of ``--save-model``: stopped between the two,
    the run says the map is complete and the model was not written, and exits 143."""
    scene = make_scene()
    args = ["-o", tmp_path / "m.tif", "-k", "3", "--save-model", tmp_path / "k.lcmap"]
    done = _run("committed", "m.lcmap.json", signal.SIGTERM, "segment", scene, *args)
    assert done.returncode == 143, done.stderr
    assert "m.tif" in done.stderr and "complete; nothing else was written" in done.stderr
    assert "Traceback" not in done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m.lcmap.json", "m.qml", "m.tif", "m.tif.aux.xml", "scene.tif"], names


def test_a_signal_during_an_import_waits_for_it(tmp_path):
    """torch's start-up aborts the process when an exception is raised inside it: a signal
    that lands in an import is delivered again once the import has finished."""
    (tmp_path / "slow_module.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.5)\nDONE = 1\n"
    )
    code = textwrap.dedent(
        """
        import signal, sys, time
        from lcmap.cli._app import _on_signal
        signal.signal(signal.SIGINT, _on_signal)
        try:
            import slow_module
            print("imported", slow_module.DONE)
            time.sleep(5)
            print("never interrupted")
        except KeyboardInterrupt:
            print("interrupted after the import")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.stdout.split("\n")[:2] == ["imported 1", "interrupted after the import"], (
        done.stdout + done.stderr
    )
