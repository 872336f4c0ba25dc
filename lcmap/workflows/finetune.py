"""Few-shot fine-tuning of any model that provides an encoder (Ghosh et al., section 4.2.1).

:func:`finetune` reads training patches from scene/labels pairs (label rasters on the scene's
grid, or polygons burnt into it, see :mod:`lcmap.io.labels`), asks the model's encoder
(:class:`~lcmap.methods.fewshot.FewShotEncoder`) for a tuned network started as ``init`` says,
trains it on them and saves it with the class names and colours, so that ``lcmap segment`` and
``lcmap vectorize`` write real class names. A ``cas`` model gives a ``cas_finetuned`` UNet
(initialised from the CAS model, its phase-1 autoencoder, or at random); a ``stego`` model
gives the same model with a linear probe trained on its codes.

Patches (:class:`~lcmap.workflows.specs.PatchSpec`) are windows on a grid over each scene that
hold labelled pixels; with a count N, N of them are chosen at random (seeded), or the first N
footprints of a ``lcmap suggest-labels`` file, to reproduce the few-shot setting. Bands and
normalisation are the base model's, so the tuned model reads scenes exactly as it did.

Example:
    >>> finetune("cas.lcmap", ["a.tif"], LabelSpec(["a.gpkg"], class_names=["water", "built"]),
    ...          "tuned.lcmap", patches=PatchSpec(count=20))  # doctest: +SKIP
"""

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lcmap.errors import InvalidModelError, InvalidSceneError, LcmapError
from lcmap.io.labels import (
    UNLABELLED,
    LabelledWindow,
    footprint_windows,
    is_vector,
    labelled_windows,
    open_labels,
    polygon_class_names,
)
from lcmap.io.legend import named_colours
from lcmap.io.scene import open_scene, read_window
from lcmap.io.stack import with_stack
from lcmap.io.staging import check_output
from lcmap.methods.fewshot import FewShotEncoder, TunableSegmenter, check_init, load_encoder
from lcmap.models import ModelHeader, file_sha256, warn_if_unlike
from lcmap.workflows.specs import LabelSpec, OutputSpec, PatchSpec, RunSpec

if TYPE_CHECKING:
    import torch
    from rasterio.io import DatasetReader

    from lcmap.methods.base import Segmenter

log = logging.getLogger(__name__)

#: Without ``patches``, at most this many patches are used (a random subset beyond it).
MAX_PATCHES = 2000


def _class_mapping(
    labels: Sequence[Path], column: str | None, class_names: Sequence[str] | None
) -> tuple[dict[str, int] | None, list[str] | None]:
    """Class name -> id for polygons whose classes are names, and the resolved names."""
    found: set[str] = set()
    named = False
    for path in labels:
        if is_vector(path):
            names = polygon_class_names(path, column)
            if names is not None:
                named = True
                found.update(names)
    if not named:
        return None, list(class_names) if class_names else None
    ordered = list(class_names) if class_names else sorted(found)
    return {name: i for i, name in enumerate(ordered)}, ordered


def _choose(
    candidates: list[tuple[int, LabelledWindow]], patches: int | None, ranked: bool, seed: int
) -> list[tuple[int, LabelledWindow]]:
    if patches is not None and patches < 1:
        raise LcmapError(f"patches={patches} is invalid; give a positive number of patches.")
    if not candidates:
        raise InvalidSceneError(
            "No training patch holds a labelled pixel; check that the labels overlap the "
            "scenes (255 = unlabelled) and that polygons are in a CRS the scene can use."
        )
    limit = patches if patches is not None else MAX_PATCHES
    if limit >= len(candidates):
        if patches is not None and patches > len(candidates):
            log.warning(
                "only %d labelled patches exist; using all of them instead of %d",
                len(candidates),
                patches,
            )
        return candidates
    if ranked:
        return candidates[:limit]
    if patches is None:
        log.warning("%d labelled patches; training on a random %d", len(candidates), limit)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(candidates), size=limit, replace=False))
    return [candidates[int(i)] for i in picked]


def finetune(
    model: str | Path,
    scenes: Sequence[str | Path],
    labels: "LabelSpec | Sequence[str | Path]",
    output: "OutputSpec | str | Path",
    *,
    patches: PatchSpec = PatchSpec(),
    init: str | None = None,
    options: dict[str, Any] | None = None,
    stack: Sequence[str | Path] = (),
    run: RunSpec = RunSpec(),
) -> ModelHeader:
    """Fine-tune a model that provides an encoder on labelled patches and save the result.

    Args:
        model: the base model file (bands, normalisation and weights come from it); its
            method must provide an encoder (:mod:`lcmap.methods.fewshot`).
        scenes: scenes with labels, one per label file.
        labels: the label files (rasters on the scenes' grids, or polygons), or a
            :class:`LabelSpec` with the polygons' class column and the class names.
        output: the tuned model file to write, and whether to replace it.
        patches: how many labelled patches (None = every one, up to :data:`MAX_PATCHES`),
            from a grid or a ``lcmap suggest-labels`` file, and their size.
        init: one of the starts the model offers (``fewshot_inits()``; ``cas``,
            ``autoencoder`` or ``random`` for a cas model); None = its first.
        options: the tuned network's training options (``epochs``, ``steps``, ``lr``,
            ``crop_size``, ``freeze_encoder``, ``head``...; ``lcmap finetune -p KEY=VALUE``),
            checked by its options dataclass; one it does not take is refused.
        stack: co-registered rasters stacked after the (one) scene's bands, as the model was
            trained with them (:mod:`lcmap.io.stack`).
        run: device; seed (patch choice, initialisation, augmentation); batch size of the
            training (None: the network's default); progress over the optimiser steps.

    Returns:
        The saved model's header.

    Raises:
        InputNotFoundError: a scene, labels or the model does not exist.
        InvalidModelError: the model provides no encoder.
        InvalidOptionError: ``init`` is not offered, or an option is not taken.
        InvalidSceneError: labels off the scene's grid, unknown classes, no labelled pixel.
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
    """
    import torch

    from lcmap.engine import choose_device
    from lcmap.models import save_model

    model, labelled_by, seed = Path(model), LabelSpec.of(labels), run.seed
    class_names, class_column = labelled_by.class_names, labelled_by.class_column
    scene_paths, label_paths, output = _check_request(model, scenes, labelled_by, output, stack)
    dev = choose_device(run.device)
    encoder, base = load_encoder(model)
    init = check_init(encoder, init)
    mapping, names = _class_mapping(label_paths, class_column, class_names)
    with with_stack(scene_paths, stack, base.extra.get("stack")) as reads:
        images, targets, max_class = _training_patches(
            scene_paths, reads, label_paths, base, mapping, class_column, patches, seed
        )
    names = _all_names(names, max_class)
    images, targets = _same_size(images, targets)
    x = torch.from_numpy(np.stack(images))
    y = torch.from_numpy(np.stack(targets).astype(np.int64))
    labelled = int((y != UNLABELLED).sum())
    log.info("fine-tuning (init %s) on %d patches, %d labelled pixels", init, len(x), labelled)
    tuning = {"batch_size": run.batch_size, **(options or {}), "seed": seed}
    tuned = _trained(encoder, (len(names), init), (x, y), tuning, run, dev)
    tuned.class_names = names
    tuned.colours = named_colours(names)
    header = _tuned_header(tuned, base, model)
    header.extra.update(
        init=init, patches=len(x), labelled_pixels=labelled, scenes=[p.name for p in scene_paths]
    )
    save_model(output, tuned, header)
    log.info("saved fine-tuned model to %s", output)
    return header


def _all_names(names: Sequence[str] | None, max_class: int) -> list[str]:
    """One name per class id (at least two classes): those given, or ``class N``."""
    count = max(len(names) if names else 0, max_class + 1, 2)
    if not names:
        return [f"class {i}" for i in range(count)]
    if len(names) < count:
        raise InvalidSceneError(
            f"the labels hold class id {count - 1} but only {len(names)} class names were "
            f"given ({', '.join(names)}); give one name per class id from 0."
        )
    return list(names)


def _same_size(
    images: list[NDArray[Any]], targets: list[NDArray[Any]]
) -> tuple[list[NDArray[Any]], list[NDArray[Any]]]:
    """Footprints of several sizes brought to the largest (images padded with 0, labels with
    unlabelled), so that they stack."""
    sizes = {im.shape[-1] for im in images} | {im.shape[-2] for im in images}
    if len(sizes) <= 1:
        return images, targets
    side = max(sizes)
    return [_pad(im, side, 0) for im in images], [_pad(t, side, UNLABELLED) for t in targets]


def _tuned_header(tuned: "Segmenter", base: ModelHeader, model: Path) -> ModelHeader:
    """The tuned model's header: the base model's bands, normalisation and band facts (the
    sensor check of later runs needs them), the tuned network's classes and config."""
    return ModelHeader(
        method=tuned.info.name,
        config=tuned.config(),
        num_classes=tuned.num_classes,
        in_channels=len(base.bands),
        bands=list(base.bands),
        norm_low=list(base.norm_low),
        norm_high=list(base.norm_high),
        norm_clip=base.norm_clip,
        band_facts=list(base.band_facts),
        class_names=list(tuned.class_names or []),
        colours=[list(c) for c in named_colours(tuned.class_names or [])],
        extra={
            **tuned.header(),
            "base_model": model.name,
            "base_model_sha256": file_sha256(model),
            **({"stack": base.extra["stack"]} if base.extra.get("stack") else {}),
        },
    )


def _require_model_bands(src: "DatasetReader", base: ModelHeader, use: str) -> None:
    """Refuse, in one line naming them, a scene that lacks one of the base model's bands (the
    model has no band choice to offer: its encoder and normalisation are fixed to those)."""
    if src.count < max(base.bands):
        raise InvalidSceneError(
            f"{Path(src.name).name} has {src.count} band{'s' if src.count > 1 else ''} but the "
            f"'{base.method}' model reads bands {', '.join(map(str, base.bands))}; {use}."
        )
    warn_if_unlike(src, base)  # the same sensor check as applying the model


def _training_patches(
    scene_paths: list[Path],
    reads: list[str | Path],
    label_paths: list[Path],
    base: ModelHeader,
    mapping: dict[str, int] | None,
    class_column: str | None,
    patches: PatchSpec,
    seed: int,
) -> tuple[list[NDArray[np.float32]], list[NDArray[np.uint8]], int]:
    """The chosen labelled patches (scenes named by ``scene_paths``, read from ``reads``: the
    same, or their stacks) with the base model's bands and normalisation, their labels (255 =
    unlabelled or nodata), and the largest class id among all candidates."""
    norm = base.read_spec().norm
    images: list[NDArray[np.float32]] = []
    targets: list[NDArray[np.uint8]] = []
    with contextlib.ExitStack() as stack:
        srcs = [stack.enter_context(open_scene(p)) for p in reads]
        for src in srcs:
            _require_model_bands(src, base, "fine-tune on scenes with them")
        bands = [list(base.bands) for _ in srcs]
        sources = []
        for src, lab in zip(srcs, label_paths, strict=True):
            source, handle = open_labels(lab, src, column=class_column, class_ids=mapping)
            if handle is not None:
                stack.enter_context(handle)
            sources.append(source)
        candidates: list[tuple[int, LabelledWindow]] = []
        ranking: list[int] = []  # suggestion order of each candidate (patches.file only)
        for i, (src, source) in enumerate(zip(srcs, sources, strict=True)):
            if patches.file is None:
                found = labelled_windows(source, src.width, src.height, patches.size)
                candidates.extend((i, w) for w in found)
            else:
                found = []
                for order, win in footprint_windows(patches.file, src, scene_paths[i].stem):
                    hit = labelled_windows(source, src.width, src.height, 0, windows=[win])
                    if hit:
                        found.append(hit[0])
                        candidates.append((i, hit[0]))
                        ranking.append(order)
            log.info("%s: %d labelled patches", scene_paths[i].name, len(found))
        if patches.file is not None:  # merge the scenes back into the file's ranking
            candidates = [
                c for _, c in sorted(zip(ranking, candidates, strict=True), key=lambda t: t[0])
            ]
        chosen = _choose(candidates, patches.count, patches.file is not None, seed)
        for i, lw in chosen:
            data, valid = read_window(srcs[i], lw.window, bands[i])
            target = sources[i].read(lw.window)
            target[~valid] = UNLABELLED
            images.append(norm.apply(data, valid))
            targets.append(target)

    return images, targets, max(lw.max_class for _, lw in candidates)


def _pad(array: NDArray[Any], side: int, value: int) -> NDArray[Any]:
    h, w = array.shape[-2:]
    widths = [(0, 0)] * (array.ndim - 2) + [(0, side - h), (0, side - w)]
    return np.pad(array, widths, constant_values=value)


def _check_request(
    model: Path,
    scenes: Sequence[str | Path],
    labelled_by: LabelSpec,
    output: "OutputSpec | str | Path",
    stack: Sequence[str | Path],
) -> tuple[list[Path], list[Path], Path]:
    """The scenes, their label files and the checked output path, before any work."""
    out = OutputSpec.of(output)
    scene_paths = [Path(s) for s in scenes]
    label_paths = [Path(p) for p in labelled_by.paths]
    if not scene_paths:
        raise LcmapError("No scene given; give at least one scene with its labels.")
    if len(scene_paths) != len(label_paths):
        raise LcmapError(
            f"{len(scene_paths)} scenes but {len(label_paths)} label files; give one label "
            "file per scene."
        )
    inputs = [model, *scene_paths, *label_paths, *stack]
    return scene_paths, label_paths, check_output(out.path, out.overwrite, inputs=inputs)


def _trained(
    encoder: FewShotEncoder,
    start: tuple[int, str],
    data: tuple["torch.Tensor", "torch.Tensor"],
    tuning: dict[str, Any],
    run: RunSpec,
    dev: "torch.device",
) -> "Segmenter":
    """A tuned network for ``start`` (K classes, init) started afresh, seeded, and trained on
    ``data`` (patches, labels) with the ``tuning`` options (the seed among them)."""
    import torch

    from lcmap.methods.base import LabelledPatches

    (num_classes, init), (x, y), seed = start, data, int(tuning["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    tuned = encoder.tuned(
        num_classes,
        init,
        patch_size=int(x.shape[-1]),
        **{k: v for k, v in tuning.items() if v is not None},
    )
    if not isinstance(tuned, TunableSegmenter):
        raise InvalidModelError(f"{type(tuned).__name__} cannot learn from patches.")
    tuned.to(dev)
    tuned.train_on(LabelledPatches(x, y), run.progress)
    return tuned


__all__ = ["MAX_PATCHES", "finetune"]
