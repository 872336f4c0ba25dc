"""The options of every built-in method, one frozen dataclass each (torch-free).

Each method module imports its dataclass from here; keeping them apart from the networks lets
the command line show their defaults in its help without importing torch (``lcmap --help``
stays fast). See :mod:`lcmap.methods.options` for how they are converted and checked.
"""

from dataclasses import dataclass
from typing import Any

from lcmap.methods.options import option
from lcmap.nets.catalogue import ENCODERS, HEADS

DEFAULT_BACKBONE = "vit_small_patch8_224.dino"
# STEGO's Potsdam ViT-S loss configuration: (weight lambda, shift b) per term.
_LOSS_DEFAULTS = {
    "self_weight": 0.67,
    "self_shift": 0.08,
    "knn_weight": 0.25,
    "knn_shift": 0.02,
    "random_weight": 0.63,
    "random_shift": 0.46,
}

#: The initialisations of ``cas_finetuned`` (Ghosh et al.'s rows).
INITS = ("cas", "autoencoder", "random")


#: Largest local-mean radius (a 201 x 201 px window is already far beyond a texture).
MAX_SMOOTH = 100
#: Most pixels sampled to fit the centroids (100k is the default; 10M takes minutes).
MAX_SAMPLES = 10_000_000


@dataclass(frozen=True)
class KMeansConfig:
    """The options of :class:`KMeansSegmenter` (``config()`` returns them)."""

    num_classes: int = option(8, "number of clusters K", low=2, high=65534)
    smooth: int = option(
        1,
        "radius in pixels of the local mean added as features (0 = bands only)",
        low=0,
        high=MAX_SMOOTH,
    )
    samples: int = option(
        100_000, "pixels sampled across the scene to fit the clusters", low=2, high=MAX_SAMPLES
    )
    seed: int = option(0, "seeds sampling and k-means initialisation", low=0)
    in_channels: int | None = option(
        None, "band count, known after fitting (stored in the model file)", low=1
    )


@dataclass(frozen=True)
class SingleSceneConfig:
    """Hyper-parameters of :class:`SingleSceneSegmenter` (all JSON; ``config()`` returns them)."""

    num_classes: int = option(
        8, "K: the paper's 8 outputs for Vaihingen's 6 classes (Sec. 4.3)", low=2, high=65534
    )
    in_channels: int | None = option(
        None, "set by fit() from the sampler: all bands are used", low=1
    )
    layers: int = option(5, "L 3x3 convolutions (Table 1); the halo", low=1)
    features: int = option(64, "kernels per convolution (Table 1)", low=1)
    reduction: int = option(16, "channel-attention MLP bottleneck ratio (CBAM's default)", low=1)
    epochs: int = option(2, "I passes over the scene (Sec. 4.3)", low=1)
    iterations: int = option(50, "J updates per batch of patches (Sec. 4.3)", low=1)
    crop_size: int = option(224, "patch side R' = C' (Sec. 3, authors' code)", low=1)
    batch_size: int = option(8, "B patches per batch (authors' code)", low=1)
    lr: float = option(1e-3, "SGD learning rate (authors' code)", above=0)
    momentum: float = option(0.9, "SGD momentum (authors' code)", low=0, below=1)
    seed: int | None = option(None, "None: use the global torch RNG (lcmap.api seeds it)", low=0)


@dataclass(frozen=True)
class UNetOptions:
    """The UNet's architecture options, shared by ``cas`` and ``cas_finetuned`` (a tuned
    model keeps its CAS model's)."""

    width: int = option(16, "UNet channels at full resolution (level i has width * 2**i)", low=1)
    depth: int = option(4, "number of 2x poolings (bottleneck stride 2**depth)", low=1, high=8)
    embed_dim: int = option(32, "channels of the bottleneck embedding", low=1)

    def unet_config(self, in_channels: int | None, out_channels: int | None) -> dict[str, Any]:
        """The ``unet`` network's config (:mod:`lcmap.nets`) for these options."""
        size = {"width": self.width, "depth": self.depth, "embed_dim": self.embed_dim}
        return {"in_channels": in_channels, **size, "out_channels": out_channels}

    @property
    def architecture(self) -> str:
        """A short name of the UNet, for the model header (``unet-w16-d4-e32``)."""
        return f"unet-w{self.width}-d{self.depth}-e{self.embed_dim}"


@dataclass(frozen=True)
class CasConfig(UNetOptions):
    """The options of :class:`CasSegmenter` (``config()`` returns them; see its Args)."""

    num_classes: int = option(8, "number of clusters K", low=2, high=65534)
    in_channels: int | None = option(None, "band count; None until fit() reads it", low=1)
    patch_size: int = option(128, "training patch side in pixels, a multiple of 2**depth", low=1)
    batch_size: int = option(16, "patches per optimiser step", low=1)
    ae_steps: int = option(500, "phase-1 (autoencoder) optimiser steps", low=0)
    dec_steps: int = option(500, "phase-2 (clustering + reconstruction) optimiser steps", low=0)
    epochs: int | None = option(
        None, "each phase runs this many epochs instead of the step counts", low=1
    )
    lr: float = option(1e-3, "Adam learning rate of both phases", above=0)
    recon_weight: float = option(10.0, "lambda of eq. 8, weight of the reconstruction", low=0)
    update_interval: int = option(25, "phase-2 steps between refreshes of the target p", low=1)
    pool_size: int = option(256, "patches drawn at each E step", low=2)
    kmeans_patches: int = option(512, "patches embedded to initialise the centroids", low=2)
    alpha: float = option(1.0, "Student-t degrees of freedom (1 in the paper)", above=0)
    keep_autoencoder: bool = option(True, "keep the phase-1 weights (a few-shot init)")
    seed: int = option(0, "seeds augmentation, pools and k-means", low=0)


@dataclass(frozen=True)
class FinetuneOptions:
    """How a few-shot network learns from labelled patches, shared by ``cas_finetuned`` and
    ``encoder_finetuned`` (each adds its learning rate: their defaults differ)."""

    batch_size: int = option(8, "patches per optimiser step", low=1)
    steps: int = option(300, "optimiser steps (when epochs is None)", low=0)
    epochs: int | None = option(None, "passes over the labelled patches; overrides steps", low=1)
    weight_decay: float = option(1e-4, "AdamW weight decay", low=0)
    class_weighting: str = option(
        "inverse", "class weights of the loss", choices=("inverse", "none")
    )
    train_patches: int = option(64, "windows drawn from the sampler by fit()", low=1)
    seed: int = option(0, "seeds patch order, crops and augmentation", low=0)


@dataclass(frozen=True)
class CasFinetunedConfig(FinetuneOptions, UNetOptions):
    """The options of :class:`CasFinetunedSegmenter` (``config()`` returns them; see its Args)."""

    num_classes: int = option(2, "number of classes K (labels 0..K-1)", low=2, high=65534)
    in_channels: int | None = option(None, "band count; None until fitted", low=1)
    patch_size: int = option(128, "side of the windows fit() draws from a sampler", low=16)
    crop_size: int | None = option(None, "random crops trained on (None = whole patches)", low=16)
    lr: float = option(1e-3, "AdamW learning rate", above=0)
    init: str = option("random", "how the weights were initialised", choices=INITS)


@dataclass(frozen=True)
class StegoConfig:
    """The options of :class:`StegoSegmenter` (``config()`` returns them resolved)."""

    num_classes: int = option(8, "number of clusters K", low=2, high=65534)
    backbone: str = option(DEFAULT_BACKBONE, "timm ViT name (DINO, DINOv2)")
    weights: str | None = option(None, "backbone weights file (else cache, then hub)")
    weights_sha256: str | None = option(None, "sha256 the weights had when trained")
    feature_layer: int | None = option(
        None, "features after this block (None = measured best for the backbone, else last)"
    )
    backbone_args: dict[str, Any] | None = option(None, "extra timm.create_model args")  # noqa: RUF009
    in_channels: int | None = option(None, "band count; None = set by fit()", low=1)
    dim: int = option(70, "code dimension (70 as STEGO's ViT-S configs)", low=1)
    crop_size: int = option(224, "training crop and mapping window side in pixels", low=1)
    crops: int = option(320, "training crops sampled across the scenes", low=2)
    epochs: int = option(10, "passes over the training crops", low=0)
    steps: int | None = option(None, "total head training steps; overrides epochs", low=0)
    batch_size: int = option(16, "crops per step (16, as in the land-cover STEGO study)", low=2)
    lr: float = option(1e-4, "Adam learning rate (1e-4, as in the land-cover STEGO study)", low=0)
    neighbours: int = option(7, "k of the k-NN positive crops (7, STEGO)", low=1)
    feature_samples: int = option(11, "random feature samples per side per crop", low=1)
    neg_samples: int = option(5, "random-crop permutations per step (5, STEGO)", low=0)
    dropout: float = option(
        0.1, "channel dropout on the head's input while training", low=0, below=1
    )
    probe_steps: int = option(300, "Adam steps of the linear probe (only with labels)", low=1)
    probe_lr: float = option(1e-2, "learning rate of the linear probe", low=0)
    crf: bool = option(False, "refine scores with the windowed dense CRF")
    crf_iterations: int = option(5, "mean-field iterations of the CRF", low=1)
    feature_batch: int = option(16, "crops or windows per backbone forward pass", low=1)
    window_stride: int | None = option(
        None, "pixels between mapping windows; a divisor of crop_size (None = half)", low=1
    )
    seed: int | None = option(None, "seeds head, batches, samples, k-means (None = drawn)", low=0)
    self_weight: float = option(_LOSS_DEFAULTS["self_weight"], "lambda of the self term")
    self_shift: float = option(_LOSS_DEFAULTS["self_shift"], "b of the self term")
    knn_weight: float = option(_LOSS_DEFAULTS["knn_weight"], "lambda of the k-NN term")
    knn_shift: float = option(_LOSS_DEFAULTS["knn_shift"], "b of the k-NN term")
    random_weight: float = option(_LOSS_DEFAULTS["random_weight"], "lambda of the random term")
    random_shift: float = option(_LOSS_DEFAULTS["random_shift"], "b of the random term")


#: The backbone ``dino_kmeans`` uses by default: the one self-supervised ViT whose weights can
#: be had offline here (``lcmap weights``), and the one its defaults were measured with.
DINO_KMEANS_BACKBONE = "vit_small_patch14_dinov2"


@dataclass(frozen=True)
class DinoKMeansConfig:
    """The options of :class:`DinoKMeansSegmenter` (``config()`` returns them resolved)."""

    num_classes: int = option(8, "number of clusters K", low=2, high=65534)
    backbone: str = option(DINO_KMEANS_BACKBONE, "timm ViT name (DINO, DINOv2)")
    weights: str | None = option(None, "backbone weights file (else cache, then hub)")
    weights_sha256: str | None = option(None, "sha256 the weights had when fitted")
    feature_layer: int | None = option(
        None, "features after this block (None = measured best for the backbone, else last)"
    )
    backbone_args: dict[str, Any] | None = option(None, "extra timm.create_model args")  # noqa: RUF009
    in_channels: int | None = option(None, "band count; None = set by fit()", low=1)
    crop_size: int = option(224, "window side in pixels (fitting and mapping)", low=1)
    crops: int = option(128, "windows drawn across the scenes to fit the clusters", low=1)
    pixels_per_crop: int = option(500, "pixels sampled per window for the k-means", low=1)
    spectral_weight: float = option(
        0.0,
        "weight of the normalised bands next to the unit ViT feature (0 = features only)",
        low=0,
    )
    flips: bool = option(
        False, "average the scores over the window and its 3 flips (4x the backbone cost)"
    )
    feature_batch: int = option(16, "windows per backbone forward pass", low=1)
    window_stride: int | None = option(
        None, "pixels between mapping windows; a divisor of crop_size (None = half)", low=1
    )
    seed: int = option(0, "seeds window and pixel sampling and the k-means", low=0)


@dataclass(frozen=True)
class PrimapsConfig(DinoKMeansConfig):
    """The options of :class:`PrimapsSegmenter`: ``dino_kmeans``' and PriMaPs-EM's (defaults:
    the paper's, which measured best on held-out scenes too)."""

    mask_threshold: float = option(
        0.4,
        "cosine to a mask's anchor (times the highest) a patch needs to join the mask",
        above=0,
        high=1,
    )
    em_steps: int = option(7000, "EM steps on the class prototypes", low=1)
    em_batch: int = option(32, "windows per EM step", low=1)
    em_lr: float = option(5e-3, "Adam learning rate of the running prototypes", above=0)
    ema_decay: float = option(0.98, "decay of the momentum prototypes", low=0, high=1)
    ema_every: int = option(10, "EM steps between momentum updates", low=1)
    focal_gamma: float = option(2.0, "focal-loss gamma of the class weights", low=0)


#: Encoders of :mod:`lcmap.nets.encoder_unet`.
ENCODER_NAMES = tuple(ENCODERS)
#: The starts of ``encoder_finetuned`` from a ``simclr`` model.
ENCODER_INITS = ("simclr", "random")
#: What the classification layer of ``encoder_finetuned`` reads.
ENCODER_HEADS = HEADS


@dataclass(frozen=True)
class EncoderOptions:
    """The network and its mapping window, shared by ``simclr`` and ``encoder_finetuned``
    (a tuned model keeps its pre-trained encoder's)."""

    encoder: str = option(
        "resnet18-unet", "contracting path (lcmap.nets.encoder_unet)", choices=ENCODER_NAMES
    )
    in_channels: int | None = option(None, "band count; None until fitted", low=1)
    weights: str | None = option(None, "local timm/torchvision checkpoint for the encoder")
    crop_size: int | None = option(
        None,
        "window side in pixels, training and mapping (None: 224 for swin-unet, else 128)",
        low=32,
    )
    window_stride: int | None = option(None, "mapping window stride (None: half a window)", low=1)
    vit_blocks: int = option(
        1,
        "dinov2-vits14: the last N blocks up to its cut whose tokens the embedding "
        "concatenates (DINOv2's boosted linear segmentation reads 4)",
        low=1,
        high=8,
    )


@dataclass(frozen=True)
class SimclrConfig(EncoderOptions):
    """The options of :class:`SimclrSegmenter` (``config()`` returns them; the defaults are
    Ghandali et al.'s)."""

    num_classes: int = option(5, "clusters K of the cosine k-means probe", low=2, high=65534)
    windows: int = option(512, "windows drawn across the scenes to pre-train on", low=2)
    batch_size: int = option(16, "windows per step (2 views each; Ghandali et al.: 8 or 16)", low=2)
    epochs: int = option(40, "passes over the windows (Ghandali et al.: 40)", low=1)
    steps: int | None = option(
        None,
        "optimiser steps; overrides epochs (0: the encoder as initialised, e.g. from "
        "its weights, with only the k-means probe fitted)",
        low=0,
    )
    optimizer: str = option(
        "sgd", "sgd (Ghandali et al.) or adam (Temple's Swin)", choices=("sgd", "adam")
    )
    lr: float = option(1e-3, "learning rate (Ghandali et al.: SGD 1e-3)", above=0)
    temperature: float = option(0.1, "NT-Xent temperature (Ghandali et al.: 0.1 or 0.7)", above=0)
    min_scale: float = option(
        0.2, "smallest random crop, fraction of the window (Ghandali et al.: 20%)", above=0, high=1
    )
    projection_dim: int = option(128, "output of the 2-layer MLP projection head", low=1)
    probe_windows: int = option(256, "windows embedded to fit the k-means probe", low=1)
    pair_channels: int | None = option(
        None, "bands of the partner sensor or date when pre-trained on pairs (set by fit)", low=1
    )
    seed: int = option(0, "seeds windows, views, initialisation and the probe", low=0)


@dataclass(frozen=True)
class EncoderFinetunedConfig(FinetuneOptions, EncoderOptions):
    """The options of :class:`EncoderFinetunedSegmenter` (``config()`` returns them)."""

    num_classes: int = option(2, "number of classes K (labels 0..K-1)", low=2, high=65534)
    decoder_width: int = option(32, "channels of the finest decoder level", low=1)
    # Default: a linear probe on the frozen encoder, which beat the UNet decoder on held-out
    # patches (a few labels cannot train a decoder), reading beside the embedding the bands,
    # their pairwise normalised differences (NDVI-like indices a linear layer on means cannot
    # form) and each band's local standard deviation (texture); each addition measured better
    # on held-out patches (benchmarks/README.md). Temple's rows are head=decoder.
    head: str = option(
        "linear-texture",
        "linear (a 1x1 layer on the encoder's embedding: linear "
        "evaluation), linear-bands (the same layer also reading the window's bands, averaged "
        "over each embedding cell), linear-indices (and every pair of bands' normalised "
        "difference), linear-texture (and each band's standard deviation over the cell and "
        "the 3 x 3 cells around it) or decoder (a UNet decoder, Temple)",
        choices=ENCODER_HEADS,
    )
    freeze_encoder: bool = option(True, "keep the pre-trained encoder (Temple's Frozen rows)")
    # Test-time augmentation over the symmetries the head was trained under: a small, measured
    # gain (benchmarks/README.md) for 8 network passes a window, so a cost/quality choice left
    # to the user, off by default.
    tta: bool = option(
        False,
        "map each window under its 8 flips and quarter turns and average the class "
        "probabilities (test-time augmentation; 8 network passes a window)",
    )
    lr: float | None = option(
        None,
        "AdamW learning rate (None: 1e-3 with the decoder, 1e-2 with the linear head)",
        above=0,
    )
    init: str = option("random", "how the encoder was initialised", choices=ENCODER_INITS)
