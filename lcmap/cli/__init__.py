"""The ``lcmap`` command line: parse, validate, call :mod:`lcmap.api`, report with rich.

Each command lives in its own module in this package and registers itself on :data:`app`;
the heavy imports (torch, rich, the API) happen inside the command functions so that
``lcmap --help`` stays fast.
"""

from lcmap.cli._app import app, main

# Importing a command module registers its command on ``app``.
from lcmap.cli import info as _info  # noqa: F401  isort: skip
from lcmap.cli import segment as _segment  # noqa: F401  isort: skip
from lcmap.cli import train as _train  # noqa: F401  isort: skip
from lcmap.cli import pretrain as _pretrain  # noqa: F401  isort: skip
from lcmap.cli import evaluate as _evaluate  # noqa: F401  isort: skip
from lcmap.cli import vectorize as _vectorize  # noqa: F401  isort: skip
from lcmap.cli import classes as _classes  # noqa: F401  isort: skip
from lcmap.cli import view as _view  # noqa: F401  isort: skip
from lcmap.cli import finetune as _finetune  # noqa: F401  isort: skip
from lcmap.cli import suggest_labels as _suggest_labels  # noqa: F401  isort: skip
from lcmap.cli import train_single_scene as _train_single_scene  # noqa: F401  isort: skip
from lcmap.cli import weights as _weights  # noqa: F401  isort: skip

__all__ = ["app", "main"]
