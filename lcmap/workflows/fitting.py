"""Fitting a method to scenes, shared by the segment and train workflows: the method built
from its options, its bands and normalisation read off the scenes, the fit, the model header."""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcmap.errors import (
    InvalidModelError,
    InvalidOptionError,
    InvalidSceneError,
    LcmapError,
)
from lcmap.io.bands import false_colour, rgb_first
from lcmap.io.legend import default_colours
from lcmap.io.scene import (
    Normalisation,
    ReadSpec,
    band_facts,
    resolve_bands,
    scene_statistics,
)
from lcmap.models import ModelHeader, warn_if_unlike
from lcmap.types import ProgressFn, start_phase
from lcmap.workflows.scene_checks import KMEANS_FROM_M, spectral_suffices

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from lcmap.methods.base import Segmenter
    from lcmap.workflows.specs import MethodSpec, RunSpec


log = logging.getLogger(__name__)


def method_bands(src: "DatasetReader", bands: list[int] | None, method: "Segmenter") -> list[int]:
    """The bands ``method`` reads from ``src``: ``bands`` as given, else every data band, with
    the true-colour bands first for a network that reads its first three as R, G, B."""
    chosen = resolve_bands(src, bands)
    if bands is None and method.info.rgb_first:
        ordered, why = rgb_first(src, chosen)
        if ordered != chosen:
            log.warning(
                "%s reads bands %s: red, green and blue first (from the %s), as its network "
                "expects; -b chooses others.",
                method.info.name,
                ",".join(map(str, ordered)),
                why,
            )
        elif (named := false_colour(src)) is not None:
            log.warning(
                "%s reads bands %s as red, green and blue, but the file names them %s; -b "
                "chooses others, -m kmeans reads them all as they are.",
                method.info.name,
                ",".join(map(str, chosen[:3])),
                named,
            )
        return ordered
    return chosen


def model_header(
    method: "Segmenter", bands: list[int], norm: Normalisation, facts: list[dict[str, Any]]
) -> ModelHeader:
    k = method.num_classes
    return ModelHeader(
        method=method.info.name,
        config=method.config(),
        num_classes=k,
        in_channels=len(bands),
        bands=bands,
        norm_low=list(norm.low),
        norm_high=list(norm.high),
        norm_clip=norm.clip,
        class_names=list(method.class_names or [f"class {i}" for i in range(k)]),
        colours=[list(c) for c in (method.colours or default_colours(k))],
        extra={**method.header(), **({"network": net} if (net := method.network()) else {})},
        band_facts=facts,
    )


def fit_method(
    method: "Segmenter",
    scenes: Sequence[str | Path],
    spec: ReadSpec,
    labels: Sequence[str | Path] | None,
    seed: int,
    device: Any,
    progress: ProgressFn | None,
) -> None:
    from lcmap.sampling import open_sampler

    with open_sampler(scenes, spec, labels, seed) as sampler:
        _fit_with(method, sampler, seed, device, progress)


def fit_pairs(
    method: "Segmenter",
    scenes: Sequence[str | Path],
    partners: Sequence[str | Path],
    spec: ReadSpec,
    seed: int,
    device: Any,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    """Fit on windows of scenes and their partners; what the model records of the partners."""
    from lcmap.methods import method_options
    from lcmap.sampling import open_pair_sampler

    if "pair_channels" not in {o.name for o in method_options(method.info.name)}:
        raise InvalidOptionError(f"method '{method.info.name}' does not learn from pairs.")
    with open_pair_sampler(scenes, partners, spec, seed) as sampler:
        _fit_with(method, sampler, seed, device, progress)
        other = sampler.partner_spec
        return {
            "partners": [Path(str(p)).name for p in partners],
            "bands": list(other.bands),
            "norm_low": list(other.norm.low),
            "norm_high": list(other.norm.high),
        }


def _fit_with(
    method: "Segmenter", sampler: Any, seed: int, device: Any, progress: ProgressFn | None
) -> None:
    from lcmap.engine import seed_everything

    seed_everything(seed)
    method.to(device)
    try:
        method.fit(sampler, progress)
    except ValueError as exc:
        if isinstance(exc, LcmapError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidSceneError(f"Cannot fit '{method.info.name}': {first}") from exc


def build_method(name: str, classes: int | None, options: dict[str, Any] | None) -> "Segmenter":
    from lcmap.methods import get_method

    try:
        return get_method(name, num_classes=classes, **(options or {}))
    except TypeError as exc:
        raise LcmapError(f"Method '{name}' does not take these options: {exc}.") from exc
    except ValueError as exc:
        if isinstance(exc, LcmapError):
            raise
        raise LcmapError(f"Bad option for method '{name}': {exc}") from exc


#: The value of ``method`` that asks for :func:`default_method`'s choice (as giving none does).
AUTO = "auto"


def default_method(
    options: dict[str, Any] | None = None,
    pixel_size: float | None = None,
    named_bands: str | None = None,
) -> tuple[str, str]:
    """The method ``lcmap segment`` uses when none is given (or ``auto``), and why, in a few
    words.

    ``weights`` in ``options`` asks for the ViT: ``primaps``. Otherwise ``kmeans`` for pixels
    of :data:`~lcmap.workflows.scene_checks.KMEANS_FROM_M` or more on the ground
    (``pixel_size``, from :func:`lcmap.io.ground.pixel_size_m`), or for a scene whose bands
    are named and none is blue (``named_bands``, their names, from
    :func:`lcmap.io.bands.false_colour`): the ViT would read them as red, green and blue, and
    on false colour it maps worse than k-means (measured on a 9 cm near-infrared, red, green
    aerial set outside the development data, which has no false-colour scene). For finer
    pixels, or a scene without georeferencing, ``primaps`` (the best unsupervised method
    measured at 0.2-4 m) when its backbone's weights are on this machine, else ``kmeans``,
    which needs none. Nothing is downloaded to decide.
    """
    from lcmap.methods.configs import DINO_KMEANS_BACKBONE
    from lcmap.nets.vit import cache_candidates, cache_dir, full_name, local_weights

    options = options or {}
    if options.get("weights"):
        return "primaps", f"backbone weights given: {options['weights']}"
    if spectral_suffices(pixel_size):
        return "kmeans", (
            f"{pixel_size:.3g} m pixels; from {KMEANS_FROM_M:g} m the spectral k-means maps "
            "as well as the ViT methods, much faster; -m primaps to use the ViT"
        )
    size = (
        f"{pixel_size:.3g} m pixels"
        if pixel_size is not None
        else "pixel size unknown (no georeferencing), chosen as for fine pixels"
    )
    if named_bands is not None:
        return "kmeans", (
            f"{size}; bands named {named_bands}, none blue: the ViT methods would read them as "
            "red, green and blue; -m primaps -b to choose its bands"
        )
    backbone = str(options.get("backbone") or DINO_KMEANS_BACKBONE)
    name = full_name(backbone)
    found = local_weights(backbone)
    if found is not None:
        return "primaps", f"{size}; {name} weights found in {found.parent}"
    return "kmeans", (
        f"{size}; no {name} weights on this machine; for primaps put "
        f"{cache_candidates(name)[-1]} in {cache_dir()} or pass weights=PATH ('lcmap weights "
        "list' shows what is looked for)"
    )


def scene_facts(scene: str | Path) -> tuple[float | None, str | None]:
    """What :func:`default_method` decides by, read off ``scene``'s header: its pixel size in
    metres (None without georeferencing) and, for a false-colour scene, its bands' names (a
    scene that cannot be read is one line, :func:`lcmap.io.scene.open_scene`)."""
    from lcmap.io.ground import pixel_size_m
    from lcmap.io.scene import open_scene

    with open_scene(scene) as src:
        return pixel_size_m(src), false_colour(src)


def segmenter_for(
    src: "DatasetReader",
    scene: str | Path,
    fitted: "MethodSpec",
    model: str | Path | None,
    run: "RunSpec",
    device: Any,
) -> tuple["Segmenter", ModelHeader, ReadSpec]:
    """The method that maps ``src``, its header and what it reads: the saved ``model``, or
    the method of ``fitted`` (named) fitted on the scene (with the scene's own normalisation);
    ``device`` is ``run.device`` resolved."""
    from lcmap.methods.loading import load_model

    classes, bands, options = fitted.classes, fitted.band_list, fitted.option_dict
    seed, progress = run.seed, run.progress
    if model is not None:
        seg, header = load_model(model, options)
        if classes is not None and classes != header.num_classes:
            raise LcmapError(
                f"{model} maps {header.num_classes} classes, not {classes}; drop classes= "
                "or train a new model with that many."
            )
        chosen = _model_bands(src, header, bands, seed)
        return seg, header, ReadSpec(tuple(chosen), header.read_spec().norm)
    resolve_bands(src, bands)  # a wrong -b is one line before the method is built
    assert fitted.name is not None  # chosen by choose_method
    seg = build_method(fitted.name, classes, options)
    chosen = method_bands(src, bands, seg)
    norm = scene_statistics([src], chosen, seed, clip=seg.info.clip_input)
    if seg.info.needs_fit:
        start_phase(progress, f"fit {seg.info.name}")
        fit_method(seg, [scene], ReadSpec(tuple(chosen), norm), None, seed, device, progress)
    header = model_header(seg, chosen, norm, band_facts(src, chosen))
    return seg, header, ReadSpec(tuple(chosen), norm)


def _model_bands(
    src: "DatasetReader", header: ModelHeader, bands: list[int] | None, seed: int
) -> list[int]:
    """The bands a saved model reads from ``src``; warns when they look like other bands.

    Raises:
        InvalidOptionError: ``bands`` differ from the model's (its classes were fitted on
            those bands; another order or sensor would silently mean other classes).
        InvalidModelError: the scene lacks one of the model's bands.
    """
    name, wanted = Path(src.name).name, ",".join(map(str, header.bands))
    if bands is not None and list(bands) != list(header.bands):
        raise InvalidOptionError(
            f"The '{header.method}' model reads bands {wanted} and its classes mean something "
            "only on those; bands cannot be chosen again with a model. Drop them, or give a "
            f"scene whose bands {wanted} are the model's (gdal_translate -b ... makes one)."
        )
    if max(header.bands) > src.count:
        raise InvalidModelError(
            f"{name} has {src.count} band{'s' if src.count > 1 else ''} but the "
            f"'{header.method}' model reads bands {wanted}; apply it to scenes with the band "
            "layout it was trained on."
        )
    warn_if_unlike(src, header, seed)
    return list(header.bands)


def choose_method(
    method: str | None,
    model: str | Path | None,
    options: dict[str, Any] | None,
    scene: str | Path | None = None,
) -> tuple[str, str]:
    """The method to fit (the model's own when ``model``) and why it was chosen ("" when
    given); see :func:`default_method` (``scene``: the scene whose pixel size decides)."""
    if method is not None and method != AUTO:
        return method, ""
    if model is not None:
        return "kmeans", ""
    facts = scene_facts(scene) if scene is not None else (None, None)
    method, choice = default_method(options, *facts)
    if choice:
        log.info("method: %s (%s)", method, choice)
    return method, choice
