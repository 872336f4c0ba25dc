"""Complete-or-absent outputs (DESIGN.md contract 5): temporary names, publication, cleanup.

Every output is first written under a temporary name beside its target,
``.<target name>.lcmap<pid>.<random><suffix>``, and renamed onto the target only when it is
complete (:func:`publish`). The process id in the name tells a later run which leftovers
belong to no live process (a run killed with SIGKILL): :func:`remove_stale` deletes those.

Every output of every command passes one guard, :func:`check_output`, before any work, and
:func:`publish` checks the target again before the rename: an output never replaces an input,
a directory, a device, a FIFO or a socket, a file under ``/dev``, ``/proc`` or ``/sys``, nor an
existing file or link without ``overwrite``.

Renames happen inside :func:`committing`: a SIGINT or SIGTERM that arrives then is held back
until the outputs are in place, so a signal can never report failure for a complete output
nor leave half of the outputs of a run published. Once every output the guard was asked about
is published, the run has only cleanup left and a signal is held back too (the CLI's signal
handler asks :func:`deferring`, and says the outputs are complete).
"""

import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from lcmap.errors import LcmapError, OutputExistsError, OutputPathError

_TAG = "lcmap"
#: Where no output ever goes: the rename would replace a device node or a kernel file
#: (``/dev/stdout`` is a link to whatever fd 1 is).
_SYSTEM = ("/dev", "/proc", "/sys")


class _State:
    committing = 0  # depth of nested committing() blocks
    held: int | None = None  # a signal that arrived meanwhile
    # (folder, prefix) of every temporary this process made, noted before it exists
    places: ClassVar[set[tuple[Path, str]]] = set()
    # the outputs the guard checked for this run, and those published so far
    expected: ClassVar[set[Path]] = set()
    published: ClassVar[list[Path]] = []


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
    target = Path(target)
    _check_entry(target, overwrite=True)  # a device or FIFO may have appeared meanwhile
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    with committing():
        os.replace(tmp, target)
        _State.published.append(_key(target))


@contextlib.contextmanager
def committing() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM (see :func:`deferring`) while outputs are renamed into place."""
    _State.committing += 1
    try:
        yield
    finally:
        _State.committing -= 1
        if not _State.committing and _State.held is not None and not all_published():
            # More work follows these outputs: the held signal stops it now.
            signum, _State.held = _State.held, None
            signal.raise_signal(signum)


def deferring(signum: int) -> bool:
    """For a signal handler: True (and the signal is noted) while outputs are being published
    or once all of them are (the run then has only cleanup left, and finishes)."""
    if _State.committing or all_published():
        _State.held = signum
        return True
    return False


def held_signal() -> int | None:
    """The signal that arrived while publishing, if any (the run completed regardless)."""
    return _State.held


def begin_run() -> None:
    """Forget the outputs and the held signal of an earlier run in this process (each CLI
    command starts with it)."""
    _State.expected.clear()
    _State.published.clear()
    _State.held = None


def all_published() -> bool:
    """Whether every output the guard checked in this process has been published."""
    return bool(_State.expected) and _State.expected <= set(_State.published)


def published() -> list[Path]:
    """The outputs published so far by this process, in order."""
    return list(dict.fromkeys(_State.published))


def _key(path: Path) -> Path:
    """One spelling of an output's path (its folder resolved, its name kept)."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        return Path(os.path.realpath(parent)) / path.name
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


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


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (through links and relative spellings)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def check_output(
    path: str | Path,
    overwrite: bool,
    also: Sequence[Path] = (),
    inputs: Sequence[str | Path] = (),
) -> Path:
    """The guard every output of every command passes, before any work (see the module doc).

    Args:
        path: the output.
        overwrite: whether an existing regular file (or a link) may be replaced.
        also: files written beside ``path`` (its sidecars), checked the same way.
        inputs: files the run reads; no output may be one of them, even with ``overwrite``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` (or one of ``also``) exists, as a file or as a link, and
            ``overwrite`` is False.
        OutputPathError: the folder is missing or not writable; the output is a directory,
            another non-regular file (a device, a FIFO, a socket), a link loop, a place under
            ``/dev``, ``/proc`` or ``/sys``, or one of ``inputs``.
    """
    check_local(path)
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"Output folder {parent} does not exist; create it first.")
    for p in (path, *also):
        # Before anything stats the path itself: a name too long for the file system fails there.
        if len(os.fsencode(p.name)) > _max_name(parent):
            raise OutputPathError(
                f"Output name {_shown(p.name)[:40]}... is longer than {parent} allows."
            )
        try:
            str(p).encode("utf-8")
        except UnicodeEncodeError:
            raise OutputPathError(
                f"Output name {_shown(p)} is not valid UTF-8, which GDAL needs; rename it."
            ) from None
        _check_entry(p, overwrite=True)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"Output folder {parent} is not writable.")
    for p in (path, *also):
        for source in inputs:
            if same_file(p, source):
                raise OutputPathError(
                    f"Output {_shown(p)} is the input {_shown(source)}; writing it would "
                    "destroy the input, give another output name."
                )
    for p in (path, *also):
        _check_entry(p, overwrite)
    for p in (path, *also):
        _State.expected.add(_key(p))
        remove_stale(p)  # leftovers of killed runs of this output
    return path


def _check_entry(path: Path, overwrite: bool) -> None:
    """Refuse to replace ``path`` unless it is absent, or a regular file or a link (to a
    regular file, or dangling) that ``overwrite`` allows replacing. The rename replaces the
    directory entry itself, so a link is judged as a link and by what it points to."""
    where = _key(path)
    if any(str(where) == s or str(where).startswith(s + "/") for s in _SYSTEM):
        raise OutputPathError(
            f"Output {_shown(path)} is a system file ({where}); lcmap writes only regular files, "
            "give a file name (pipe that file onwards if needed)."
        )
    try:
        entry = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputPathError(
            f"Output {_shown(path)} cannot be reached ({exc.strerror})."
        ) from None
    if stat.S_ISLNK(entry.st_mode):
        try:
            entry = os.stat(path)
        except FileNotFoundError:
            if not overwrite:
                raise OutputExistsError(
                    f"{_shown(path)} exists (a link to a missing file); pass overwrite=True "
                    "to replace the link."
                ) from None
            return
        except OSError as exc:
            raise OutputPathError(
                f"Output {_shown(path)} is a link that cannot be followed ({exc.strerror}); "
                "give another name."
            ) from None
    if stat.S_ISDIR(entry.st_mode):
        raise OutputPathError(f"Output {_shown(path)} is a directory; give a file name.")
    if not stat.S_ISREG(entry.st_mode):
        raise OutputPathError(
            f"Output {_shown(path)} is not a regular file (a device, FIFO or socket); lcmap "
            "replaces only regular files, give another name."
        )
    if not overwrite:
        raise OutputExistsError(f"{_shown(path)} exists; pass overwrite=True to replace it.")


def _shown(path: str | Path) -> str:
    """A path as a message can print it (undecodable bytes escaped, as ``ls -b`` does)."""
    return os.fsdecode(os.fsencode(path)).encode("utf-8", "backslashreplace").decode()


@contextlib.contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """Make the output folder ``path`` if it is missing, for the checks of the outputs it will
    hold; if the block fails (a refused output, an unreadable input), a folder made here is
    removed again, so a refused run leaves no empty folder behind."""
    folder = Path(path)
    made = not folder.exists()
    folder.mkdir(exist_ok=True)
    try:
        yield folder
    except LcmapError:
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def check_local(path: str | Path) -> None:
    """Refuse stdout (``-``), GDAL virtual paths and URLs as outputs, in one line."""
    text = str(path)
    if text == "-" or text.startswith(("/vsi", "vsi")) or "://" in text:
        raise OutputPathError(
            f"Output {text} is not a local file: lcmap writes to a temporary file and renames "
            "it into place, so it cannot write to stdout or a GDAL virtual path; give a file "
            "name (pipe the file onwards if needed)."
        )


def check_distinct(*outputs: str | Path | None) -> None:
    """Refuse two outputs of one run that name the same file (``-o m.tif --save-model m.tif``).

    Raises:
        OutputPathError: two of ``outputs`` are one file.
    """
    given = [Path(p) for p in outputs if p is not None]
    for i, a in enumerate(given):
        for b in given[i + 1 :]:
            if same_file(a, b):
                raise OutputPathError(
                    f"Two outputs of this run are the same file ({a}, {b}); give each its own name."
                )


def _max_name(folder: Path) -> int:
    """Longest file name (bytes) ``folder``'s file system allows, less room for temp names."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    return max(1, limit - 32)  # temporary names add a prefix and a suffix
