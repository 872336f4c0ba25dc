"""The train workflow: a method fitted on windows drawn across scenes, saved as a model file."""

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lcmap.errors import (
    InvalidSceneError,
    LcmapError,
)
from lcmap.io.scene import (
    ReadSpec,
    band_facts,
    open_scene,
    resolve_bands,
    scene_path,
    scene_statistics,
    warn_if_no_nodata,
)
from lcmap.io.stack import layout as stack_layout
from lcmap.io.stack import stacked
from lcmap.io.staging import check_output
from lcmap.models import ModelHeader
from lcmap.workflows.fitting import (
    build_method,
    fit_method,
    fit_pairs,
    method_bands,
    model_header,
)
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

log = logging.getLogger(__name__)


def train(
    scenes: Sequence[str | Path],
    output: "OutputSpec | str | Path",
    *,
    method: "MethodSpec | str",
    labels: Sequence[str | Path] | None = None,
    partners: Sequence[str | Path] | None = None,
    stack: Sequence[str | Path] = (),
    run: RunSpec = RunSpec(),
) -> ModelHeader:
    """Fit a method on windows drawn across ``scenes`` and save it as a model file.

    The normalisation is estimated over all scenes and stored in the model, so every scene
    mapped with it is stretched the same way and its labels keep their meaning.

    Args:
        scenes: one or more rasters with the same band layout.
        output: the model file to write (``.lcmap``), and whether to replace it.
        method: the method (a registry name, or a :class:`MethodSpec` with K, bands and its
            options).
        labels: optional label rasters aligned with ``scenes`` (255 = unlabelled).
        partners: per scene, the same ground seen by another sensor or on another date, read
            on the scene's grid through a warped view (any CRS and pixel size): positive
            pairs for methods that learn from pairs (``simclr``).
        stack: co-registered rasters whose bands follow the (one) scene's, reprojected onto
            its grid (:mod:`lcmap.io.stack`); the model records their layout.
        run: device, seed, progress callback.

    Returns:
        The saved model's header.

    Example:
        >>> train(["a.tif", "b.tif"], "stego.lcmap", method=MethodSpec("stego", classes=8))
        ... # doctest: +SKIP
    """
    if not scenes:
        raise LcmapError("No scene given; pass at least one raster to train on.")
    if stack and len(scenes) != 1:
        raise LcmapError(f"a stack goes with one scene; {len(scenes)} were given.")
    out, fitted = OutputSpec.of(output), MethodSpec.of(method)
    if fitted.name is None:
        raise LcmapError("No method given; name one (see 'lcmap methods').")
    bands, seed = fitted.band_list, run.seed
    inputs = [*scenes, *(labels or []), *(partners or []), *stack]
    output = check_output(out.path, out.overwrite, inputs=inputs)

    from lcmap.engine import choose_device
    from lcmap.models import save_model

    dev = choose_device(run.device)
    with contextlib.ExitStack() as opened:
        if stack:  # the scene's bands and the stack's, read through one VRT
            scenes = [opened.enter_context(stacked(scene_path(scenes[0]), list(stack)))]
        srcs = [opened.enter_context(open_scene(p)) for p in scenes]
        _check_bands(srcs, bands)
        seg = build_method(fitted.name, fitted.classes, fitted.option_dict)
        # The first scene says which bands are which; the others are read in the same order.
        chosen = method_bands(srcs[0], bands, seg)
        norm = scene_statistics(srcs, chosen, seed, clip=seg.info.clip_input)
        facts = band_facts(srcs[0], chosen)
        spec = ReadSpec(tuple(chosen), norm)
        if partners is None:
            fit_method(seg, scenes, spec, labels, seed, dev, run.progress)
            header = model_header(seg, chosen, norm, facts)
        else:
            pairs = fit_pairs(seg, scenes, partners, spec, seed, dev, run.progress)
            header = model_header(seg, chosen, norm, facts)
            header.extra["pairs"] = pairs
        if stack:
            header.extra["stack"] = stack_layout(stack)
    save_model(output, seg, header)
    log.info("saved %s model to %s", fitted.name, output)
    return header


def _check_bands(srcs: list["DatasetReader"], bands: list[int] | None) -> None:
    """The same bands from every scene (a wrong -b is one line before any work)."""
    counts = {s.count for s in srcs}
    if bands is None and len(counts) > 1:
        raise InvalidSceneError(
            f"The scenes have different band counts ({sorted(counts)}); "
            "pass bands=... to pick the same bands from each."
        )
    for s in srcs:
        resolve_bands(s, bands)
        warn_if_no_nodata(s)
