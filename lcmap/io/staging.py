"""Complete-or-absent outputs (DESIGN.md contract 5): temporary names, publication, cleanup.

Every output is first written under a temporary name beside its target,
``.<target name>.lcmap<pid>.<random><suffix>``, and renamed onto the target only when it is
complete (:func:`publish`). The process id in the name tells a later run which leftovers
belong to no live process (a run killed with SIGKILL): :func:`remove_stale` deletes those.

Renames happen inside :func:`committing`: a SIGINT or SIGTERM that arrives then is held back
until the outputs are in place, so a signal can never report failure for a complete output
nor leave half of the outputs of a run published (the CLI's signal handler asks
:func:`deferring`).
"""

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

_TAG = "lcmap"


class _State:
    committing = 0  # depth of nested committing() blocks
    held: int | None = None  # a signal that arrived meanwhile
    # (folder, prefix) of every temporary this process made, noted before it exists
    places: ClassVar[set[tuple[Path, str]]] = set()


def _prefix(target: Path) -> str:
    return f".{target.name}.{_TAG}{os.getpid()}."


def _note_place(target: Path) -> None:
    _State.places.add((target.parent, _prefix(target)))


def temp_path(target: str | Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside ``target`` to write it under (see the module doc)."""
    target = Path(target)
    _note_place(target)
    fd, name = tempfile.mkstemp(prefix=_prefix(target), suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def temp_dir(target: str | Path) -> Path:
    """A new empty folder beside ``target`` (for writers that choose their own file names)."""
    target = Path(target)
    _note_place(target)
    return Path(tempfile.mkdtemp(prefix=_prefix(target), dir=target.parent))


def remove_own_leftovers() -> list[Path]:
    """Delete every temporary this process made that is still there (the CLI calls it when
    SIGINT or SIGTERM stops a run).

    Each writer removes its own temporaries when it fails or is interrupted, but a signal can
    land between a temporary's creation and the writer noting it (inside ``mkstemp``): the
    folder and prefix of every temporary are noted before it is made, so this finds those too.
    Published outputs carry no such prefix and are never touched.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    for folder, prefix in sorted(_State.places):
        try:
            entries = [e for e in folder.iterdir() if e.name.startswith(prefix)]
        except OSError:
            continue
        removed += [entry for entry in entries if _remove(entry)]
    return removed


def _remove(entry: Path) -> bool:
    """Delete a leftover file or folder; False when it could not be."""
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except OSError:
        return False
    return True


def publish(tmp: str | Path, target: str | Path) -> None:
    """Rename a finished temporary file onto ``target`` with the usual permissions.

    ``mkstemp`` creates files readable by their owner only; published outputs get the
    permissions a plain ``open()`` would have given them (0666 less the umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    with committing():
        os.replace(tmp, target)


@contextlib.contextmanager
def committing() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM (see :func:`deferring`) while outputs are renamed into place."""
    _State.committing += 1
    try:
        yield
    finally:
        _State.committing -= 1


def deferring(signum: int) -> bool:
    """For a signal handler: True (and the signal is noted) while outputs are being published."""
    if _State.committing:
        _State.held = signum
        return True
    return False


def held_signal() -> int | None:
    """The signal that arrived while publishing, if any (the run completed regardless)."""
    return _State.held


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale(target: str | Path) -> list[Path]:
    """Delete leftovers of ``target``'s earlier runs whose process no longer exists.

    Returns:
        The paths removed.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(re.escape(f".{target.name}.{_TAG}") + r"(\d+)\.")
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = pattern.match(entry.name)
        if found is None or int(found.group(1)) == os.getpid() or _alive(int(found.group(1))):
            continue
        if _remove(entry):
            removed.append(entry)
    return removed


def no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk is full or a file-size limit hit."""
    import errno

    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        if any(t in str(chain) for t in ("No space left", "File too large", "disk is full")):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def out_of_room(exc: BaseException, folder: Path, files: Sequence[Path]) -> bool:
    """Whether a write error came from a full disk or the file-size limit: what the error
    says (:func:`no_space`), else what the file system says (GDAL often reports only
    ``Write failed`` or a later read of the broken file)."""
    import resource

    if no_space(exc):
        return True
    with contextlib.suppress(OSError):
        if shutil.disk_usage(folder).free < 1 << 20:
            return True
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        sizes = [f.stat().st_size for f in files if f.exists()]
        return bool(sizes) and max(sizes) >= limit - (64 << 10)
    return False
