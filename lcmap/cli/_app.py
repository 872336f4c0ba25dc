"""The Typer app and what every command shares: verbosity, error reporting, progress bars."""

import contextlib
import functools
import inspect
import logging
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from lcmap.errors import LcmapError

app = typer.Typer(
    name="lcmap",
    help="Land-cover maps from georeferenced scenes, without labels or with very few.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

log = logging.getLogger("lcmap")

# -v/-q, which every command takes (rio style: WARNING by default, one step per -v); declared
# once, by :func:`command`.
Verbose = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: tracebacks).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors; no progress bar.")]
# --device/--seed, which every command that fits or applies a model takes; declared once, by
# :func:`command` with ``run=True``, which hands the command a RunSpec built from them.
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
Seed = Annotated[
    int,
    typer.Option("--seed", help="Fixes sampling and initialisation.", min=0, max=2**32 - 1),
]

#: The library names options by the API's keywords (``bands=``, ``overwrite=True``); its
#: messages reach the command line with the flags instead.
FLAGS = {
    "overwrite": "--overwrite",
    "sets": "--set",
    "bands": "--bands",
    "weights": "--weights",
    "class_column": "--class-column",
    "class_names": "--class-names",
    "labels": "--labels",
    "ignore": "--ignore",
    "min_area": "--min-area",
    "simplify": "--simplify",
    "workers": "--workers",
    "scheduler": "--scheduler",
    "part_rows": "--part-rows",
    "device": "--device",
    "model": "--model",
    "classes": "-k/--classes",
    "save_model": "--save-model",
    "tile": "--tile",
    "halo": "--halo",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "patches": "--patches",
    "budget": "--budget",
    "stack": "--stack",
}
_KEYWORD = re.compile(r"\b(overwrite)=True\b|\b(" + "|".join(FLAGS) + r")=(?:\.\.\.)? ?")


def cli_message(text: str) -> str:
    """``text`` with the API keywords of :data:`FLAGS` written as the command line's flags."""

    def flag(match: re.Match[str]) -> str:
        if match[1]:
            return FLAGS[match[1]]
        after = text[match.end() : match.end() + 1]
        return FLAGS[match[2]] + ("" if not after or after in ",.;:)" else " ")

    return _KEYWORD.sub(flag, text)


_state: dict[str, Any] = {"verbose": 0, "quiet": False, "global_verbose": 0, "global_quiet": False}


def versions() -> dict[str, str]:
    """Versions of lcmap and of what it runs on (``lcmap --version``, as rio --show-versions)."""
    import platform

    import numpy
    import rasterio

    from lcmap import __version__

    found = {
        "lcmap": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "GDAL": rasterio.__gdal_version__,
        "PROJ": rasterio.__proj_version__,
    }
    found.update(_torch_versions())
    return found


def _torch_versions() -> dict[str, str]:
    """torch's, timm's and CUDA's versions from the installed packages' metadata, without
    importing torch (which takes seconds): the CUDA version is that torch was built with."""
    import importlib.metadata
    import importlib.util
    import re

    found: dict[str, str] = {}
    for name in ("torch", "timm"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    spec = importlib.util.find_spec("torch")
    cuda = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        with contextlib.suppress(OSError):
            text = (Path(folder) / "version.py").read_text()
            match = re.search(r"^cuda(?:\s*:\s*[^=]+)?\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
            cuda = match.group(1) if match else None
    found["CUDA"] = f"{cuda} (torch's build)" if cuda else "none (a CPU build of torch)"
    return found


def _show_versions(value: bool) -> None:
    if value:
        for name, version in versions().items():
            typer.echo(f"{name}: {version}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_versions,
            is_eager=True,
            help="Show lcmap's version and those of GDAL, torch and CUDA, then exit.",
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="More log output, for every command."),
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors, for every command.")
    ] = False,
) -> None:
    """Land-cover maps from georeferenced scenes, without labels or with very few."""
    _state.update(global_verbose=verbose, global_quiet=quiet)


def command(
    name: str, on: typer.Typer = app, run: bool = False
) -> Callable[[Callable[..., Any]], Any]:
    """Register a command on ``on`` with the options shared by every command, declared here once.

    Every command takes -v/-q, which set up logging before the command's own body runs. With
    ``run=True`` it also takes --device and --seed, and its body gets them as ``run``, a
    :class:`~lcmap.workflows.specs.RunSpec` (to which the body adds its progress callback).
    """
    shared: dict[str, tuple[Any, Any]] = (
        {"device": (Device, "auto"), "seed": (Seed, 0)} if run else {}
    )
    shared.update(verbose=(Verbose, 0), quiet=(Quiet, False))

    def register(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def call(*args: Any, **kwargs: Any) -> Any:
            setup_logging(kwargs.pop("verbose"), kwargs.pop("quiet"))
            if run:
                from lcmap.workflows.specs import RunSpec

                kwargs["run"] = RunSpec(kwargs.pop("device"), kwargs.pop("seed"))
            return body(*args, **kwargs)

        signature = inspect.signature(body)
        own = [p for p in signature.parameters.values() if not (run and p.name == "run")]
        added = [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
            for key, (kind, default) in shared.items()
        ]
        call.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        annotations = {k: v for k, v in body.__annotations__.items() if k != "run" or not run}
        call.__annotations__ = {**annotations, **{k: kind for k, (kind, _) in shared.items()}}
        on.command(name)(call)
        return body

    return register


def setup_logging(verbose: int, quiet: bool) -> None:
    """Map -v/-q (given before or after the command) to a log level; logs go to stderr."""
    from rich.console import Console
    from rich.logging import RichHandler

    verbose += _state["global_verbose"]
    quiet = quiet or _state["global_quiet"]
    _state.update(verbose=verbose, quiet=quiet)
    level = logging.ERROR if quiet else max(logging.DEBUG, logging.WARNING - 10 * verbose)
    root = logging.getLogger("lcmap")
    root.handlers.clear()
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    root.addHandler(handler)
    root.setLevel(level)
    # GDAL's own messages (libtiff's "File too large"...) come out as one lcmap error line;
    # -v shows them as they happen, and libtiff's lines that bypass GDAL.
    gdal_log = logging.getLogger("rasterio")
    gdal_log.handlers.clear()
    gdal_log.addHandler(handler if verbose >= 1 else logging.NullHandler())
    gdal_log.propagate = False
    gdal_log.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    if verbose < 1:
        from lcmap.io.libtiff import silence_error_lines

        silence_error_lines()
    logging.captureWarnings(True)
    if verbose < 1:  # "Category: message", without lcmap's file paths and line numbers
        warnings.formatwarning = _short_warning
    warn_log = logging.getLogger("py.warnings")
    warn_log.handlers.clear()
    warn_log.addHandler(handler)
    warn_log.setLevel(logging.ERROR if quiet else logging.WARNING)
    sys.unraisablehook = _unraisable
    if not getattr(sys.excepthook, "lcmap", False):
        sys.excepthook = _cython_print_hook(sys.excepthook)


def _cython_print_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``sys.excepthook`` for the exceptions Cython prints while Python code is still running
    (rasterio's GDAL log callback prints its decoding error before reporting it as
    unraisable): a debug line. A real uncaught exception reaches the hook with no Python frame
    left on the stack, and goes to ``original``."""

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        try:
            running = sys._getframe(1) is not None
        except ValueError:
            running = False
        if not running:
            original(kind, value, tb)
            return
        log.debug("ignored while running: %s: %s", kind.__name__, value)

    hook.lcmap = True  # type: ignore[attr-defined]
    return hook


def _unraisable(args: Any) -> None:
    """An exception no caller can catch (rasterio's GDAL log callback failing to decode a
    message that is not UTF-8, a destructor): a debug line (-vv), not Python's traceback. The
    error that follows it, if any, is reported as usual."""
    where = getattr(args.object, "__qualname__", None) or repr(args.object)
    log.debug("ignored in %s: %s: %s", where, args.exc_type.__name__, args.exc_value)


def _short_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> str:
    return f"{category.__name__}: {message}"


def parse_bands(value: str | None) -> list[int] | None:
    """Parse ``--bands 4,3,2`` into 1-based band indexes."""
    return parse_numbers(value, "band numbers", "4,3,2", start=1)


def parse_numbers(value: str | None, what: str, example: str, start: int) -> list[int] | None:
    """Parse a comma-separated list of integers from ``start`` (``--bands 4,3,2``, ``--class-ids
    1,3``); ``what`` names them in the one-line error."""
    if value is None:
        return None
    try:
        numbers = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(
            f"'{value}' is not a comma-separated list of {what}; use e.g. {example}."
        ) from None
    if not numbers or min(numbers) < start:
        raise typer.BadParameter(f"{what} start at {start}; got '{value}'.")
    return numbers


def parse_key_values(values: list[str] | None, what: str = "option") -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options (``--co``, ``-p``)."""
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} '{item}' is not KEY=VALUE.")
        result[key.strip()] = val.strip()
    return result


def _resource_message(exc: BaseException) -> str:
    """One line for a fault of the machine or of GDAL rather than of lcmap's input checks."""
    if isinstance(exc, MemoryError):
        return "Out of memory; use a smaller --tile or --batch-size, or free memory."
    if isinstance(exc, ImportError):  # a shared library did not fit the address-space limit
        return (
            f"Not enough address space to load the libraries ({exc}); raise the limit "
            "(ulimit -v): torch's CUDA build maps several GB of libraries even on a CPU, its "
            "CPU build far less (see the README)."
        )
    if "previous exception" in str(exc) and (exc.__cause__ or exc.__context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]  # GDAL's own words
    from lcmap.io.staging import no_space

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if no_space(exc) or "Write failed" in text:
        filename = getattr(exc, "filename", None)
        where = f" holding {filename}" if filename else ""
        return (
            f"The disk{where} is full or a file-size limit was reached ({text}); "
            "nothing was written. Free space or write elsewhere."
        )
    return f"{text} ({type(exc).__name__})."


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn an :class:`LcmapError` into one red line on stderr and exit code 1."""
    from lcmap.io.staging import begin_run

    begin_run()
    try:
        yield
    except Exception as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:  # an error while unwinding after SIGINT/SIGTERM: the signal
            _interrupted(interrupt)
        # lcmap's own errors, and faults of the machine (disk full) or GDAL (CPLE_*): one line.
        gdal = type(exc).__module__.startswith("rasterio")
        no_room = isinstance(exc, ImportError) and "map segment" in str(exc)
        if not isinstance(exc, LcmapError | OSError | MemoryError) and not (gdal or no_room):
            raise
        if _state["verbose"] >= 2:
            log.exception("traceback")
        message = str(exc) if isinstance(exc, LcmapError) else _resource_message(exc)
        echo_error(cli_message(message))
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        _interrupted(exc)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The SIGINT/SIGTERM that ``exc`` was raised while handling, if any (a library's cleanup
    can fail when a signal lands inside it: rasterio then reports 'No GDAL environment')."""
    seen: BaseException | None = exc.__context__ or exc.__cause__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__context__ or seen.__cause__
    return None


def _interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Remove what the run left, say so in one line, exit 143 (SIGTERM) or 130 (SIGINT)."""
    from rich.console import Console

    from lcmap.io.staging import published, remove_own_leftovers

    remove_own_leftovers()  # what a writer had made but not yet noted when the signal came
    what = "Terminated" if isinstance(exc, Terminated) else "Interrupted"
    done = published()
    told = (
        f"{', '.join(str(p) for p in done)} complete; nothing else was written."
        if done
        else "no output was written."
    )
    Console(stderr=True, highlight=False).print(f"[red]{what}[/red]: {told}", soft_wrap=True)
    raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None


def is_quiet() -> bool:
    """Whether -q was given (before or after the command name)."""
    return bool(_state["quiet"])


def echo_error(message: str) -> None:
    """Print one red error line on stderr, also with -q (a failure the run survived)."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(
        f"[red]Error:[/red] {escape(message)}", soft_wrap=True
    )


def echo(message: str) -> None:
    """Print a result line on stderr unless -q (stdout stays free for pipelines)."""
    if not _state["quiet"]:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, highlight=False).print(escape(message), soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, batch schedulers, ``docker stop``), handled as Ctrl-C is."""


def _on_signal(signum: int, frame: Any) -> None:
    from lcmap.io.staging import deferring

    if deferring(signum):
        return  # outputs are being renamed into place: the run completes, then exits
    if _importing(frame):
        # An exception raised inside a module's import can land in C++ (torch's start-up,
        # through pybind11), which aborts the process: the signal comes again once it is done.
        import os
        import threading

        again = threading.Timer(0.2, os.kill, (os.getpid(), signum))
        again.daemon = True
        again.start()
        return
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _importing(frame: Any) -> bool:
    """Whether ``frame`` runs inside an import (a module's top-level code)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _inductor_dir() -> Path | None:
    """The folder torch's compiler caches in by default (``$TMPDIR/torchinductor_<user>``),
    or None when the user chose one."""
    import getpass
    import os
    import tempfile

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return None
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return None
    safe = re.sub(r'[\\/:*?"<>|]', "_", user)  # as torch names it
    return Path(tempfile.gettempdir()) / f"torchinductor_{safe}"


def main() -> None:
    """Console-script entry point: SIGINT and SIGTERM clean up and exit 130 / 143.

    A signal that arrives once every output is published is held back (the run has only
    cleanup left): the command finishes, says the outputs are complete, and exits 0.
    """
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    inductor = _inductor_dir()
    had_inductor = inductor is None or inductor.exists()
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    # Nothing is left to interrupt: a signal from here on cannot kill the process mid-exit
    # (with no message) or raise inside the interpreter's shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not had_inductor:  # importing timm makes torch's compile cache folder, empty
        with contextlib.suppress(OSError):
            inductor.rmdir()  # type: ignore[union-attr]  # only while still empty
    from lcmap.io.staging import held_signal, published

    held = held_signal()
    if held is not None and code in (0, None):
        what = "Terminated" if held == signal.SIGTERM else "Interrupted"
        done = ", ".join(str(p) for p in published())
        echo(f"{what} after the outputs were complete: {done}.")
    sys.exit(code)
