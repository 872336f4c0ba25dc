"""The named encoders and heads of :mod:`lcmap.nets.encoder_unet`, without importing torch.

One list that the networks, the methods' options and the command line all read, so that adding
an encoder is one entry here (and its builder in ``encoder_unet``).
"""

#: Encoder name -> timm model name ("" = the CAS UNet's contracting path).
ENCODERS = {
    "unet": "",
    "resnet18-unet": "resnet18",
    "resnet34-unet": "resnet34",
    "resnet50-unet": "resnet50",
    "swin-unet": "swin_tiny_patch4_window7_224",
    "dinov2-vits14": "vit_small_patch14_dinov2",
}
#: Encoders that only take windows of one size (Swin's attention windows tile a fixed grid; the
#: ViT's tokens were measured in STEGO's 224 px crops, a multiple of its 14 px patch and of 32).
FIXED_SIZE = {"swin-unet": 224, "dinov2-vits14": 224}
#: What the classification layer reads: the UNet decoder, the encoder's embedding alone, the
#: embedding beside the input's bands averaged over each embedding cell, those and the bands'
#: pairwise normalised differences, or those and each band's local standard deviation.
HEADS = ("decoder", "linear", "linear-bands", "linear-indices", "linear-texture")
