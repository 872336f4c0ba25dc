"""``lcmap.io.staging``: temporary names, publication, leftovers of killed runs, signals."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from lcmap.io import staging


def test_temporary_names_carry_the_target_and_the_process(tmp_path: Path) -> None:
    target = tmp_path / "map.tif"
    tmp = staging.temp_path(target, ".partial.tif")
    assert tmp.parent == tmp_path and tmp.exists()
    assert tmp.name.startswith(f".map.tif.lcmap{os.getpid()}.") and tmp.name.endswith(
        ".partial.tif"
    )
    folder = staging.temp_dir(target)
    assert folder.is_dir() and folder.name.startswith(f".map.tif.lcmap{os.getpid()}.")


def test_publish_gives_the_usual_permissions(tmp_path: Path) -> None:
    tmp = staging.temp_path(tmp_path / "m.lcmap")
    tmp.write_bytes(b"model")
    staging.publish(tmp, tmp_path / "m.lcmap")
    mode = (tmp_path / "m.lcmap").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask and not tmp.exists()


def test_only_leftovers_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.tif.lcmap{dead.pid}.x.partial.tif"
    mine = tmp_path / f".m.tif.lcmap{os.getpid()}.y.partial.tif"
    other_target = tmp_path / f".n.tif.lcmap{dead.pid}.z.partial.tif"
    for p in (stale, mine, other_target):
        p.write_bytes(b"")
    assert staging.remove_stale(tmp_path / "m.tif") == [stale]
    assert mine.exists() and other_target.exists()


def test_a_signal_during_publication_is_held_until_the_outputs_are_in_place(
    tmp_path: Path,
) -> None:
    """Held while renaming; then delivered again when more outputs are still to come, and
    held for good once every output the guard checked is published (only cleanup is left)."""
    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        first, second = tmp_path / "a.tif", tmp_path / "b.lcmap"
        staging.check_output(first, False)
        staging.check_output(second, False)
        assert staging.deferring(signal.SIGTERM) is False
        with staging.committing():
            staging.publish(staging.temp_path(first), first)
            assert staging.deferring(signal.SIGTERM) is True
        assert got == [signal.SIGTERM]  # b.lcmap is still to come: the signal stops the run
        assert staging.held_signal() is None and staging.published() == [first]
        staging.publish(staging.temp_path(second), second)
        assert staging.deferring(signal.SIGTERM) is True  # all in place: nothing to stop
        assert staging.held_signal() == signal.SIGTERM and got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)


def test_out_of_room_recognises_a_full_disk(tmp_path: Path) -> None:
    import errno

    assert staging.out_of_room(OSError(errno.ENOSPC, "No space left on device"), tmp_path, [])
    assert staging.out_of_room(RuntimeError("_tiffWriteProc: File too large"), tmp_path, [])
    assert not staging.out_of_room(RuntimeError("bad tile"), tmp_path, [])


def test_a_temporary_its_writer_never_noted_is_removed_after_an_interrupt(tmp_path: Path) -> None:
    """A signal can land inside ``mkstemp``, after the file exists and before the writer holds
    its name: the CLI's interrupt path then finds it by the place noted beforehand. Nothing
    else goes: not another process's temporary, not another name, not a published output."""
    target = tmp_path / "m.tif"
    lost = staging.temp_path(target, ".ovr3.tif")  # made; its writer never learnt the name
    folder = staging.temp_dir(target)
    (folder / "m.gpkg").write_bytes(b"x")
    target.write_bytes(b"published")
    other_pid = tmp_path / f".m.tif.lcmap{os.getpid() + 1}.w.partial.tif"
    unrelated = tmp_path / "notes.txt"
    for p in (other_pid, unrelated):
        p.write_bytes(b"")
    removed = staging.remove_own_leftovers()
    assert set(removed) >= {lost, folder}
    assert not lost.exists() and not folder.exists()
    assert target.read_bytes() == b"published" and other_pid.exists() and unrelated.exists()
