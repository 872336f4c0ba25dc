"""A quick look at a map without a GIS: the scene and the map side by side, with the legend.

Both are read by rio-tiler at a small size (GDAL picks the overviews, so a map of any size reads
a few MB), the scene stretched between its 2nd and 98th percentiles, the map in its own colours
(nearest resampling: labels stay labels), the legend with each class's name and its share of the
map's valid pixels in the picture. Written as a PNG for reports and terminals.
"""

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lcmap.errors import InvalidSceneError, OutputPathError
from lcmap.io.bands import display_bands
from lcmap.io.legend import raster_class_names
from lcmap.io.scene import check_readable
from lcmap.io.staging import check_distinct, check_output, publish, temp_path

#: Longest side of each half of the picture, in pixels.
PREVIEW_SIZE = 768


def write_preview(
    label_map: str | Path,
    output: str | Path,
    scene: str | Path | None = None,
    bands: Sequence[int] | None = None,
    overwrite: bool = False,
    size: int = PREVIEW_SIZE,
) -> Path:
    """Write the PNG quick look of ``label_map`` (beside ``scene`` when given).

    Args:
        label_map: an lcmap map (its colour table and ``CLASS_NAMES`` give colours and names).
        output: the PNG to write.
        scene: the scene the map was made from, shown on the left.
        bands: the scene's bands shown as red, green, blue (default:
            :func:`~lcmap.io.bands.display_bands`, its true colour where the file says which
            bands those are, else its first three, or one).
        overwrite: replace an existing ``output``.
        size: longest side of each half, in pixels.

    Raises:
        OutputPathError, OutputExistsError: ``output`` cannot be written (before any work).
        InvalidSceneError: the map is not a single-band label raster.
    """
    check_readable(label_map, "Map")
    if scene is not None:
        check_readable(scene)
    output = check_preview(output, overwrite, [label_map, *([scene] if scene is not None else [])])
    labels, valid, colours, names = _read_map(label_map, size)
    picture = _read_scene(scene, bands, size) if scene is not None else None
    png = _render(labels, valid, colours, names, picture, Path(label_map).name)
    tmp = temp_path(output, ".png")
    try:
        tmp.write_bytes(png)
        publish(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output


def check_preview(
    output: str | Path,
    overwrite: bool,
    inputs: Sequence[str | Path] = (),
    others: Sequence[str | Path] = (),
) -> Path:
    """The guard for a preview, before any work: a ``.png`` name, writable, none of ``inputs``
    nor of the run's ``others`` outputs.

    Raises:
        OutputPathError, OutputExistsError: it cannot be written.
    """
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise OutputPathError(f"Preview {output.name}: the name must end .png.")
    check_distinct(output, *others)
    return check_output(output, overwrite, inputs=inputs)


def _read_map(
    path: str | Path, size: int
) -> tuple[NDArray[Any], NDArray[np.bool_], dict[int, tuple[int, int, int]], dict[int, str]]:
    from rio_tiler.errors import NoOverviewWarning
    from rio_tiler.io import Reader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoOverviewWarning)  # --co OVERVIEWS=NONE: read anyway
        reader = Reader(str(path))
    with reader:
        src: Any = reader.dataset
        if src.count != 1 or np.dtype(src.dtypes[0]).kind not in "iu":
            raise InvalidSceneError(f"{path} is not a single-band label map.")
        image = reader.preview(max_size=size, indexes=1, resampling_method="nearest")
        try:
            table = src.colormap(1)
        except ValueError:
            table = {}
        tagged = raster_class_names(src) or {}
    labels = image.data[0]
    valid = image.mask > 0
    found = sorted(int(v) for v in np.unique(labels[valid]))
    names = {i: tagged.get(i, f"class {i}") for i in found}
    colours = {i: tuple(int(c) for c in table.get(i, (128, 128, 128, 255))[:3]) for i in found}
    return labels, valid, colours, names  # type: ignore[return-value]


def _read_scene(path: str | Path, bands: Sequence[int] | None, size: int) -> NDArray[np.float64]:
    from rio_tiler.errors import NoOverviewWarning
    from rio_tiler.io import Reader

    with warnings.catch_warnings():
        # A scene without overviews is read decimated all the same (the preview's size bounds
        # the memory); saying so in a warning would only be noise.
        warnings.simplefilter("ignore", NoOverviewWarning)
        with Reader(str(path)) as reader:
            chosen = tuple(bands) if bands else display_bands(reader.dataset)
            image = reader.preview(max_size=size, indexes=chosen)
    data = image.data.astype(np.float64)
    valid = image.mask > 0
    out = np.zeros((*data.shape[1:], 3))
    for i, band in enumerate(data if len(data) == 3 else [data[0]] * 3):
        values = band[valid]
        low, high = np.percentile(values, (2, 98)) if values.size else (0.0, 1.0)
        out[..., i] = np.clip((band - low) / max(high - low, 1e-9), 0, 1)
    out[~valid] = 1.0
    return out


def _render(
    labels: NDArray[Any],
    valid: NDArray[np.bool_],
    colours: dict[int, tuple[int, int, int]],
    names: dict[int, str],
    scene: NDArray[np.float64] | None,
    title: str,
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rgb = np.ones((*labels.shape, 3))
    for cls, colour in colours.items():
        rgb[(labels == cls) & valid] = np.array(colour) / 255
    panels = [scene, rgb] if scene is not None else [rgb]
    height, width = labels.shape
    fig = Figure(figsize=(4.5 * len(panels) * width / max(height, width) + 3, 5), layout="tight")
    FigureCanvasAgg(fig)
    for i, (panel, caption) in enumerate(
        zip(panels, ["scene", title][-len(panels) :], strict=True)
    ):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(caption, fontsize=9)
        ax.set_axis_off()
    total = max(int(valid.sum()), 1)
    handles = [
        Patch(
            color=(colours[c][0] / 255, colours[c][1] / 255, colours[c][2] / 255),
            label=f"{names[c]} ({100 * int(((labels == c) & valid).sum()) / total:.1f} %)",
        )
        for c in sorted(colours)
    ]
    fig.legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()
