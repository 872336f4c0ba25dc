"""Frozen timm ViT backbones: creation by name, weight resolution and loading, band adaptation.

Weights resolve in this order (DESIGN.md, "Backbones and weights"):

1. an explicit ``weights`` path: an official DINO ``.pth`` (``dino_deitsmall8_pretrain.pth``, or
   a training checkpoint with a ``teacher`` entry), an official DINOv2 ``.pth``
   (``dinov2_vits14_pretrain.pth``; key names are converted to timm's) or a timm
   ``.safetensors``. ``.pth`` files are read with ``torch.load(weights_only=True)``, never
   unpickled as code;
2. the cache directory ``$LCMAP_CACHE_DIR`` (default ``~/.cache/lcmap``), holding a file named
   ``<arch>.<tag>.safetensors`` (``vit_small_patch8_224.dino.safetensors``),
   ``<arch>.safetensors`` or the official file name (``dino_deitsmall8_pretrain.pth``);
3. timm's Hugging Face hub file (``timm/<arch>.<tag>``, ``model.safetensors``): first from
   ``$LCMAP_CACHE_DIR/hub`` without network, then downloaded there when online. "Online" means
   neither ``LCMAP_OFFLINE`` nor ``HF_HUB_OFFLINE`` is set and ``huggingface.co:443`` accepts a
   TCP connection within two seconds (probed in a daemon thread, so a stuck DNS lookup cannot
   hang the run).

Offline with nothing found raises :class:`~lcmap.errors.WeightsError` at once, naming the file
to get and where to put it.
"""

import contextlib
import logging
import os
import pickle
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lcmap.errors import WeightsError
from lcmap.models import file_sha256
from lcmap.nets.fetch import FETCHABLE

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

log = logging.getLogger(__name__)

#: The backbones the STEGO and DINO papers use, in timm's ``arch.tag`` spelling.
KNOWN_BACKBONES = (
    "vit_small_patch8_224.dino",
    "vit_small_patch16_224.dino",
    "vit_base_patch8_224.dino",
    "vit_base_patch16_224.dino",
    "vit_small_patch14_dinov2.lvd142m",
    "vit_base_patch14_dinov2.lvd142m",
    "vit_small_patch14_reg4_dinov2.lvd142m",
    "vit_base_patch14_reg4_dinov2.lvd142m",
)
_PTH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_ONLINE_TIMEOUT_S = 2.0
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a backbone's weights came from.

    Attributes:
        path: the weights file.
        sha256: hex sha256 of the file.
        source: ``"explicit"``, ``"cache"`` or ``"hub"``.
    """

    path: Path
    sha256: str
    source: str


def full_name(backbone: str) -> str:
    """Return timm's ``arch.tag`` name for ``backbone``, adding the default pretrained tag.

    Raises:
        ValueError: timm has no model of that name, or it is not a plain ViT.
    """
    import timm
    from timm.models import get_arch_pretrained_cfgs, split_model_name_tag

    arch, tag = split_model_name_tag(backbone.strip())
    if not timm.is_model(arch) or not arch.startswith("vit_"):
        raise ValueError(
            f"Unknown backbone '{backbone}': expected a timm ViT such as "
            f"{', '.join(KNOWN_BACKBONES)}."
        )
    if not tag:
        tags = list(get_arch_pretrained_cfgs(arch))
        if tags:
            return str(tags[0])
    return f"{arch}.{tag}" if tag else arch


def cache_dir() -> Path:
    """The weights cache: ``$LCMAP_CACHE_DIR``, else ``~/.cache/lcmap``."""
    env = os.environ.get("LCMAP_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lcmap"


def official_filename(name: str) -> str | None:
    """File name of the official checkpoint (``dino_deitsmall8_pretrain.pth``), if any."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    url = getattr(cfg, "url", None) if cfg is not None else None
    return url.rsplit("/", 1)[-1] if url else None


def cache_candidates(name: str) -> list[str]:
    """File names looked for in the cache directory, in order."""
    arch = name.split(".", 1)[0]
    names = [f"{name}.safetensors", f"{arch}.safetensors"]
    official = official_filename(name)
    if official:
        names.append(official)
    # Last: what 'lcmap weights get' can fetch for this backbone without a model hub.
    names += [item.filename for item in FETCHABLE.values() if full_name(item.backbone) == name]
    return list(dict.fromkeys(names))


def is_online(host: str = "huggingface.co", port: int = 443) -> bool:
    """Whether the weights hub is reachable: never blocks longer than about two seconds."""
    if any(os.environ.get(v, "").lower() in _TRUE for v in ("LCMAP_OFFLINE", "HF_HUB_OFFLINE")):
        return False
    reached: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=_ONLINE_TIMEOUT_S):
                reached.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_ONLINE_TIMEOUT_S + 0.5)
    return bool(reached)


def local_weights(backbone: str) -> Path | None:
    """The weights of ``backbone`` already on this machine (cache directory, then timm's hub
    cache), without touching the network; None when there are none."""
    name = full_name(backbone)
    cache = cache_dir()
    for filename in cache_candidates(name):
        if (cache / filename).is_file():
            return cache / filename
    return _hub_weights(name, cache, download=False)


def weights_table() -> list[dict[str, Any]]:
    """One row per known backbone: where its weights would resolve from, whether they are
    here, and their sha256 (``lcmap weights list``). Never touches the network."""
    cache = cache_dir()
    rows = []
    for name in KNOWN_BACKBONES:
        found = local_weights(name)
        rows.append(
            {
                "backbone": name,
                "cache": str(cache),
                "looks_for": cache_candidates(name),
                "present": found is not None,
                "path": str(found) if found else None,
                "sha256": file_sha256(found) if found else None,
            }
        )
    return rows


def _hub_weights(name: str, cache: Path, download: bool = True) -> Path | None:
    """timm's hub ``model.safetensors`` for ``name``: cached copy first, download if online."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return None
    hub_cache = cache / "hub"
    try:
        return Path(
            hf_hub_download(repo, "model.safetensors", cache_dir=hub_cache, local_files_only=True)
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    if not download or not is_online():
        return None
    log.info("Downloading %s weights from huggingface.co/%s", name, repo)
    try:
        return Path(hf_hub_download(repo, "model.safetensors", cache_dir=hub_cache))
    except Exception as exc:  # hub errors come in many classes; all mean "no weights"
        raise WeightsError(
            f"Downloading {name} weights from huggingface.co/{repo} failed ({exc}); "
            f"download them by hand into {cache} or pass weights=PATH."
        ) from exc


def resolve_weights(
    backbone: str, weights: str | Path | None = None, expected_sha256: str | None = None
) -> ResolvedWeights:
    """Find the weights file for ``backbone`` (explicit path, cache directory, hub).

    Args:
        backbone: timm name, ``arch`` or ``arch.tag``.
        weights: explicit weights file. When it is missing and ``expected_sha256`` is given
            (a saved model being reloaded on another machine), the search goes on in the
            cache and the hub; otherwise a missing explicit file is an error.
        expected_sha256: sha256 the weights should have; a mismatch is logged as a warning
            (the same weights in another format have another digest).

    Raises:
        WeightsError: no weights found (the message says which file to get, where to put it).
    """
    name = full_name(backbone)
    cache = cache_dir()
    found: tuple[Path, str] | None = None
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            found = (path, "explicit")
        elif expected_sha256 is None:
            raise WeightsError(
                f"Backbone weights file {path} not found; pass an existing weights=PATH "
                f"(official DINO/DINOv2 .pth or timm .safetensors for {name})."
            )
        else:
            candidate = cache / path.name
            if candidate.is_file():
                found = (candidate, "cache")
    if found is None:
        for filename in cache_candidates(name):
            if (cache / filename).is_file():
                found = (cache / filename, "cache")
                break
    if found is None:
        hub = _hub_weights(name, cache)
        if hub is not None:
            found = (hub, "hub")
    if found is None:
        wanted = official_filename(name) or f"{name}.safetensors"
        raise WeightsError(
            f"No weights for backbone {name} and no network to download them: get {wanted} "
            f"(or timm's {name}.safetensors) and put it in {cache} (set LCMAP_CACHE_DIR to "
            "choose the folder), or pass weights=PATH."
        )
    path, source = found
    sha = file_sha256(path)
    if expected_sha256 is not None and sha != expected_sha256:
        log.warning(
            "Backbone weights %s have sha256 %s, but the model was trained with %s; "
            "maps may differ unless these are the same weights in another format.",
            path,
            sha[:12],
            expected_sha256[:12],
        )
    return ResolvedWeights(path=path, sha256=sha, source=source)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a weights file into a flat state dict with DINO wrapper prefixes removed.

    Raises:
        WeightsError: unreadable file or unsupported format.
    """
    from safetensors import SafetensorError

    suffix = path.suffix.lower()
    obj: Any
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            from lcmap.models import check_safetensors

            check_safetensors(path)
            obj = load_file(str(path))
        elif suffix in _PTH_SUFFIXES:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise WeightsError(
                f"Weights file {path} has suffix '{suffix}'; expected .safetensors or .pth."
            )
    except pickle.UnpicklingError:
        # torch's refusal is many lines and suggests weights_only=False, which would run the
        # file's code: lcmap never does.
        raise WeightsError(
            f"Weights file {path} holds code (pickled objects other than tensors), which lcmap "
            "refuses to run; use a .safetensors file or a plain state dict of tensors."
        ) from None
    except EOFError:
        raise WeightsError(f"Weights file {path} is empty or cut short.") from None
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        if isinstance(exc, WeightsError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"Cannot read weights file {path} ({first}).") from exc
    # DINO training checkpoints wrap the backbone: {"teacher": {"module.backbone.x": ...}}.
    for key in ("teacher", "model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"Weights file {path} does not hold a state dict of tensors.")
    bad = [k for k, v in obj.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise WeightsError(f"Weights file {path}: tensor {bad[0]} holds NaN or infinite values.")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    # Projection heads (DINO head, classifier) are not part of the feature extractor.
    return {k: v for k, v in state.items() if not k.startswith(("head.", "head_"))}


def load_backbone_weights(model: "VisionTransformer", path: Path, name: str) -> None:
    """Load ``path`` into ``model``, converting official DINO/DINOv2 names to timm's.

    Raises:
        WeightsError: the file does not fit the architecture.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = read_state_dict(path)
    want = _patch_conv(model).weight.shape
    got = state.get("patch_embed.proj.weight")
    if got is not None and tuple(got.shape[-2:]) != tuple(want[-2:]):
        # timm would silently resample the patch embedding; that is another backbone.
        raise WeightsError(
            f"Weights {path} have {tuple(got.shape[-2:])} patches but backbone {name} uses "
            f"{tuple(want[-2:])}; pass backbone= with the matching name."
        )
    state = checkpoint_filter_fn(state, model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        own = set(model.state_dict())
        missing = sorted(own - set(state))
        unexpected = sorted(set(state) - own)
        detail = (
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected "
            f"{unexpected[:3]}"
            if missing or unexpected
            else str(exc).splitlines()[0]
        )
        raise WeightsError(
            f"Weights {path} do not fit backbone {name} ({detail}); pass weights made for "
            f"{name} or pass backbone= with the matching name."
        ) from exc


def _patch_conv(model: "VisionTransformer") -> nn.Conv2d:
    proj = model.patch_embed.proj
    if not isinstance(proj, nn.Conv2d):
        raise TypeError(f"expected a Conv2d patch embedding, found {type(proj).__name__}")
    return proj


def create_backbone(
    backbone: str, backbone_args: dict[str, Any] | None = None
) -> tuple["VisionTransformer", str]:
    """Create a randomly initialised, headless, any-size timm ViT.

    Returns:
        The model and its ``arch.tag`` name.
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    name = full_name(backbone)
    model = timm.create_model(
        name.split(".", 1)[0],
        pretrained=False,
        num_classes=0,
        dynamic_img_size=True,
        **(backbone_args or {}),
    )
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"Backbone {name} is not a plain ViT; choose one of {KNOWN_BACKBONES}.")
    return model, name


def build_vit(backbone: str, backbone_args: dict[str, Any] | None = None) -> "VisionTransformer":
    """The network factory's ``vit``: :func:`create_backbone` without the name."""
    return create_backbone(backbone, backbone_args)[0]


def adapt_input_channels(model: "VisionTransformer", channels: int) -> None:
    """Give ``model``'s patch embedding ``channels`` input bands (in place).

    Bands 1-3 are taken as R, G, B and keep their filters; every further band gets the mean
    of the RGB filters; all filters are then scaled by 3 / ``channels`` so that a grey image
    (every band equal) gives the same embedding as before. Fewer than 3 bands: each band gets
    the mean RGB filter scaled by 3 / ``channels`` (a grey band replicated into R, G, B).
    """
    proj = _patch_conv(model)
    if proj.in_channels == channels:
        return
    if proj.in_channels != 3:
        raise ValueError(f"patch embedding already adapted to {proj.in_channels} bands")
    weight = proj.weight.detach()
    mean_filter = weight.mean(dim=1, keepdim=True)
    if channels >= 3:
        extra = mean_filter.expand(-1, channels - 3, -1, -1)
        new_weight = torch.cat([weight, extra], dim=1)
    else:
        new_weight = mean_filter.expand(-1, channels, -1, -1)
    new = nn.Conv2d(
        channels,
        proj.out_channels,
        kernel_size=proj.kernel_size,  # type: ignore[arg-type]
        stride=proj.stride,  # type: ignore[arg-type]
        padding=proj.padding,  # type: ignore[arg-type]
        bias=proj.bias is not None,
    ).to(weight.device)
    with torch.no_grad():
        new.weight.copy_(new_weight * (3.0 / channels))
        if proj.bias is not None and new.bias is not None:
            new.bias.copy_(proj.bias)
    new.requires_grad_(False)
    model.patch_embed.proj = new


def adapt_band_stats(values: tuple[float, ...], channels: int) -> list[float]:
    """Per-band mean or std for ``channels`` bands from RGB statistics (see above)."""
    rgb = [float(v) for v in values[:3]]
    avg = sum(rgb) / len(rgb)
    if channels >= 3:
        return rgb + [avg] * (channels - 3)
    return [avg] * channels


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX), from the kernel's
    CPU flags; False where they cannot be read (not Linux)."""
    global _NATIVE_BF16
    if _NATIVE_BF16 is None:
        try:
            flags = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            flags = ""
        _NATIVE_BF16 = any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    return _NATIVE_BF16


_NATIVE_BF16: bool | None = None


def backbone_precision(device: torch.device) -> Any:
    """The autocast a frozen backbone runs under on ``device``: bf16 where the device computes
    it natively (CUDA, and CPUs with AVX-512 BF16 or AMX), where it is several times faster
    than fp32 and moves few labels; plain fp32 elsewhere, where emulated bf16 is slower.
    Callers turn the features back to fp32 before any dot product or distance."""
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def exact_scores(device: torch.device) -> Any:
    """No autocast: the scores and distances computed from a backbone's features run in fp32
    whatever autocast the caller set (the mapping loop's bf16 on CUDA), so a GPU map agrees
    with a CPU map; :func:`backbone_precision` inside it still runs the backbone in bf16."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
