"""Import lcmap from another checkout, to compare two code versions in the same environment.

PYTHONPATH alone does not do it: an editable install (``pip install -e``) finds lcmap through an
import hook that comes before PYTHONPATH, so both runs would use the same code.
"""

import sys
from pathlib import Path


def use_checkout(root: str) -> None:
    """Import lcmap from ``root``: drop the editable install's import hook, put root first."""
    root = str(Path(root).resolve())
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, root)
    import lcmap

    if not lcmap.__file__ or not lcmap.__file__.startswith(root):
        sys.exit(f"lcmap was imported from {lcmap.__file__}, not from {root}")
