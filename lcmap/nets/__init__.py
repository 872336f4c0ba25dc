"""Networks by name, apart from the objectives that train them.

A method (an objective: STEGO's distillation, DEC, Saha et al.'s loss, cross-entropy) asks
for its network with :func:`build_net` and records ``{"name": ..., "config": ...}`` in the
model file (``header.extra["network"]``), so a network trained by one objective can be
rebuilt as an encoder by another.

=====================  ==============================================================
name                   network
=====================  ==============================================================
``unet``               the CAS UNet (:mod:`lcmap.nets.unet`), N bands in
``single_scene_cnn``   Saha et al.'s CNN (:mod:`lcmap.nets.single_scene_cnn`)
``vit``                a headless timm ViT by name (DINO, DINOv2; :mod:`lcmap.nets.vit`)
``timm_encoder``       any timm ``features_only`` encoder (ResNet, Swin...) with an
                       N-band stem (:mod:`lcmap.nets.timm_encoder`)
``encoder_unet``       ResNet-UNet, Swin-UNet or the CAS UNet's contracting path with
                       a UNet decoder (:mod:`lcmap.nets.encoder_unet`)
=====================  ==============================================================

Example:
    >>> from lcmap.nets import build_net
    >>> unet = build_net("unet", in_channels=4, width=16, depth=4, embed_dim=32, out_channels=4)
"""

import importlib
from typing import Any

from lcmap.errors import InvalidOptionError

#: name -> "module:factory" (imported when first built: this module does not import torch).
NETWORKS = {
    "unet": "lcmap.nets.unet:UNet",
    "single_scene_cnn": "lcmap.nets.single_scene_cnn:SingleSceneNet",
    "vit": "lcmap.nets.vit:build_vit",
    "timm_encoder": "lcmap.nets.timm_encoder:TimmEncoder",
    "encoder_unet": "lcmap.nets.encoder_unet:EncoderUNet",
}


def list_nets() -> list[str]:
    """Names :func:`build_net` knows."""
    return sorted(NETWORKS)


def build_net(name: str, **config: Any) -> Any:
    """Build network ``name`` with its keyword ``config`` (randomly initialised).

    Raises:
        InvalidOptionError: an unknown network name.
    """
    if name not in NETWORKS:
        raise InvalidOptionError(f"Unknown network '{name}'; known: {', '.join(list_nets())}.")
    module, factory = NETWORKS[name].split(":")
    return getattr(importlib.import_module(module), factory)(**config)


def network_record(name: str, **config: Any) -> dict[str, Any]:
    """What a model file stores of its network: its name and the config that rebuilds it."""
    return {"name": name, "config": config}
