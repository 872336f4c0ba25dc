"""Exceptions and warnings raised by lcmap.

Each error also inherits the matching builtin (as rasterio and rio-tiler do), so callers can
keep writing ``except ValueError``. Messages say what was found, what was expected and how to
fix it; the CLI prints them as one line.
"""


class LcmapError(Exception):
    """Base class of every error lcmap raises on purpose."""


class InvalidSceneError(LcmapError, ValueError):
    """The input raster cannot be segmented as given (empty, all nodata, bad bands...)."""


class InvalidModelError(LcmapError, ValueError):
    """A model file is corrupt, of another format, or does not fit the scene."""


class UnknownMethodError(LcmapError, LookupError):
    """No segmentation method of that name is registered.

    A ``LookupError`` rather than ``KeyError``: ``str(KeyError)`` adds quotes.
    """


class WeightsError(LcmapError, OSError):
    """Backbone weights could not be found, downloaded or verified."""


class OutputExistsError(LcmapError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class OutputPathError(LcmapError, OSError):
    """The output cannot be written where it was asked for."""


class InputNotFoundError(LcmapError, FileNotFoundError):
    """An input file does not exist."""


class InvalidOptionError(LcmapError, ValueError):
    """An option or creation option has an unknown name or a value out of range."""


class LcmapWarning(UserWarning):
    """Base class of lcmap's warnings about fixable data problems."""


class NoGeoreferenceWarning(LcmapWarning):
    """The scene has no CRS or transform; the output will have none either."""


class NoNodataWarning(LcmapWarning):
    """The scene declares neither a nodata value nor a mask; every pixel is treated as valid."""


class TrainingCollapseWarning(LcmapWarning):
    """Contrastive pre-training ended collapsed (NT-Xent at its chance level): the encoder
    learnt nothing."""


class ModelMismatchWarning(LcmapWarning):
    """A scene's bands look unlike those a model was trained on (another sensor or order)."""
