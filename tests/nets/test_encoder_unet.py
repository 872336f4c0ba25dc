"""``lcmap.nets.encoder_unet``: every encoder, any band count, local weights adapted."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from lcmap.errors import InvalidOptionError, WeightsError
from lcmap.methods._contrastive import sample_at
from lcmap.nets import build_net
from lcmap.nets.catalogue import ENCODERS, FIXED_SIZE
from lcmap.nets.encoder_unet import EncoderUNet, encoder_state


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_each_encoder_maps_n_bands_to_classes_and_embeddings(encoder):
    torch.manual_seed(0)
    net = build_net("encoder_unet", encoder=encoder, in_channels=7, out_channels=5)
    size = FIXED_SIZE.get(encoder, 64)
    net.eval()
    with torch.no_grad():
        x = torch.rand(2, 7, size, size)
        logits, z = net(x), net.embed(x)
    assert logits.shape == (2, 5, size, size)
    assert z.shape == (2, net.embed_dim(), size // 4, size // 4)
    assert torch.allclose(z.norm(dim=1), torch.ones(2, size // 4, size // 4), atol=1e-4)
    assert len(net.features(x)) == len(net.reductions)


def test_local_rgb_weights_are_loaded_into_a_five_band_stem(tmp_path):
    torch.manual_seed(1)
    rgb = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    net = EncoderUNet("resnet18-unet", in_channels=5, weights=str(path))
    state = encoder_state(net)
    deep = state["encoder.body.layer4.1.conv2.weight"]
    assert torch.equal(deep, rgb.state_dict()["layer4.1.conv2.weight"])
    stem = state["encoder.body.conv1.weight"]
    assert stem.shape[1] == 5
    # timm's adaptation: the RGB filters repeated over the bands and rescaled by 3 / 5.
    assert torch.allclose(stem[:, :3], rgb.state_dict()["conv1.weight"] * 3 / 5, atol=1e-6)


def test_the_linear_head_reads_the_embedding_and_has_no_decoder():
    torch.manual_seed(0)
    net = build_net(
        "encoder_unet", encoder="resnet18-unet", in_channels=3, out_channels=4, head="linear"
    )
    net.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        logits = net(x)
        by_hand = torch.nn.functional.interpolate(
            net.head(net.embed(x)), size=(64, 64), mode="bilinear", align_corners=False
        )
    assert logits.shape == (1, 4, 64, 64) and torch.allclose(logits, by_hand, atol=1e-6)
    outside = {k for k in net.state_dict() if not k.startswith("encoder.")}
    assert outside == {"head.weight", "head.bias"}  # K x D weights and K biases, nothing else
    assert net.head.weight.shape == (4, net.embed_dim(), 1, 1)
    with pytest.raises(ValueError, match="unknown head"):
        build_net("encoder_unet", encoder="unet", in_channels=3, head="mlp")


def test_the_linear_bands_head_reads_each_cells_mean_band_values_after_the_embedding():
    torch.manual_seed(0)
    net = build_net(
        "encoder_unet", encoder="resnet18-unet", in_channels=3, out_channels=3, head="linear-bands"
    )
    net.eval()
    assert net.head.weight.shape == (3, net.embed_dim() + 3, 1, 1)
    # Class scores from the bands alone: class c scores band c's mean over each 4 x 4 cell.
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.weight[:, net.embed_dim() :, 0, 0] = torch.eye(3)
    x = torch.zeros(1, 3, 64, 64)
    x[0, 0, :32] = 1.0  # top half: band 0; bottom-left: band 1; bottom-right: band 2
    x[0, 1, 32:, :32] = 1.0
    x[0, 2, 32:, 32:] = 1.0
    with torch.no_grad():
        classes = net(x).argmax(1)[0]
    assert (classes[:30] == 0).all()
    assert (classes[34:, :30] == 1).all() and (classes[34:, 34:] == 2).all()
    # The embedding part is unchanged: the same layer as the linear head's on embed().
    with torch.no_grad():
        column = net.probe_input(x, net.features(x))
    assert torch.equal(column[:, : net.embed_dim()], net.embed(x))


def _linear_head_net(head: str, bands: int, **options):
    """A seeded resnet18-unet with a 2-class linear ``head`` on ``bands`` bands, in eval mode."""
    torch.manual_seed(0)
    net = build_net(
        "encoder_unet",
        encoder="resnet18-unet",
        in_channels=bands,
        out_channels=2,
        head=head,
        **options,
    )
    return net.eval()


def test_the_linear_indices_head_adds_each_pairs_normalised_difference():
    net = _linear_head_net("linear-indices", 3)
    d = net.embed_dim()
    assert net.head.weight.shape == (2, d + 3 + 3, 1, 1)  # embedding, 3 bands, 3 pairs
    x = torch.rand(1, 3, 32, 32)
    x[0, :, :8] = torch.tensor([0.6, 0.2, 0.0])[:, None, None]  # the first cell row: 0.6, 0.2, 0
    with torch.no_grad():
        probe = net.probe_input(x, net.features(x))
    assert torch.equal(probe[:, :d], net.embed(x))
    bands = torch.nn.functional.avg_pool2d(x, 4)
    assert torch.allclose(probe[:, d : d + 3], bands)
    # Pairs (0, 1), (0, 2), (1, 2): (a - b) / (a + b + 0.01), by hand on the first cell.
    expected = torch.tensor([0.4 / 0.81, 0.6 / 0.61, 0.2 / 0.21])
    assert torch.allclose(probe[0, d + 3 :, 0, 0], expected, atol=1e-5)
    # Brightness scales away: the same cell twice as bright keeps its indices (up to eps).
    with torch.no_grad():
        darker = net.probe_input(x / 2, net.features(x / 2))
    assert torch.allclose(darker[0, d + 3 :, 0, 0], probe[0, d + 3 :, 0, 0], atol=0.05)


def test_the_linear_texture_head_adds_each_bands_local_standard_deviation():
    net = _linear_head_net("linear-texture", 2)
    d = net.embed_dim()
    assert net.head.weight.shape == (2, d + 2 + 1 + 4, 1, 1)  # 2 bands, 1 pair, 2 x 2 stds
    x = torch.full((1, 2, 32, 32), 0.5)
    x[0, 0, :8, :8] = (torch.arange(8)[:, None] + torch.arange(8)).remainder(2).float()  # 0/1
    with torch.no_grad():
        probe = net.probe_input(x, net.features(x))
    # The embedding, the bands and their difference first, as the linear-indices head reads.
    bands = torch.nn.functional.avg_pool2d(x, 4)
    assert torch.equal(probe[:, :d], net.embed(x))
    assert torch.allclose(probe[:, d : d + 2], bands)
    std4, std12 = probe[0, d + 3 : d + 5], probe[0, d + 5 :]
    # Band 0: a 0/1 checkerboard over the top-left 2 x 2 cells (std 0.5 in each), flat elsewhere.
    assert torch.allclose(std4[0, :2, :2], torch.full((2, 2), 0.5))
    assert std4[0, 2:].abs().max() < 1e-6 and std4[1].abs().max() < 1e-3
    # Over 3 x 3 cells: the corner cell sees 4 cells, all checkered (mean 0.5, std 0.5); the
    # cell at (1, 1) sees 4 checkered cells of 9, the rest 0.5: std = 0.5 * sqrt(4 / 9).
    assert torch.allclose(std12[0, 0, 0], torch.tensor(0.5), atol=1e-4)
    assert torch.allclose(std12[0, 1, 1], torch.tensor(0.5 * (4 / 9) ** 0.5), atol=1e-4)
    assert std12[0, 4:, 4:].abs().max() < 1e-3 and std12[1].abs().max() < 1e-3


@pytest.mark.parametrize("encoder", ["unet", "resnet18-unet"])
def test_hypercolumn_scores_are_the_literal_hypercolumn_dotted(encoder):
    """``hypercolumn_dots`` (simclr's k-means map) equals the built hypercolumn's dot products,
    a position with a zero stage included (its own normalisation's eps)."""
    torch.manual_seed(0)
    net = build_net("encoder_unet", encoder=encoder, in_channels=4, out_channels=3).eval()
    x = torch.rand(2, 4, 96, 64)
    with torch.no_grad():
        feats = net.features(x)
        kept = [i for i, r in enumerate(net.reductions) if r >= 4]
        feats[kept[-1]][0, :, 0, 0] = 0
        vectors = torch.nn.functional.normalize(torch.randn(6, net.embed_dim()), dim=1)
        literal = torch.einsum("bdhw,kd->bkhw", net.hypercolumn(feats, x.shape[-2:]), vectors)
        torch.testing.assert_close(
            net.hypercolumn_dots(feats, x.shape[-2:], vectors), literal, atol=1e-5, rtol=0
        )


@pytest.mark.parametrize(
    ("encoder", "stages"), [("unet", None), ("resnet18-unet", 2), ("dinov2-vits14", None)]
)
def test_the_hypercolumn_at_points_is_the_built_hypercolumn_sampled(encoder, stages):
    """``hypercolumn_at`` (simclr's k-means probe) equals ``sample_at`` on
    the built hypercolumn, values and gradients: pixel centres of the window (its edges
    included, where bilinear sampling reads outside), points anywhere, some outside the
    window, and a zero stage."""
    torch.manual_seed(0)
    options = {"vit_blocks": 2} if encoder == "dinov2-vits14" else {}
    net = build_net("encoder_unet", encoder=encoder, in_channels=4, **options).eval()
    h, w = (224, 224) if encoder == "dinov2-vits14" else (96, 64)
    x = torch.rand(2, 4, h, w)
    rows, cols = torch.randint(0, h, (2, 50)), torch.randint(0, w, (2, 50))
    rows[:, :4] = torch.tensor([0, 0, h - 1, h - 1])  # the four corner pixels
    cols[:, :4] = torch.tensor([0, w - 1, 0, w - 1])
    centres = torch.stack([(cols + 0.5) / w * 2 - 1, (rows + 0.5) / h * 2 - 1], dim=-1)
    coords = torch.cat([centres, torch.rand(2, 30, 2) * 2.4 - 1.2], dim=1)
    with torch.no_grad():
        feats = net.features(x)
        kept = [i for i, r in enumerate(net.reductions) if r >= 4]
        feats[kept[-1]][0, :, 0, 0] = 0
    feats = [f.requires_grad_() for f in feats]  # and its gradients
    literal = sample_at(net.hypercolumn(feats, x.shape[-2:], stages), coords)
    got = net.hypercolumn_at(feats, x.shape[-2:], coords, stages)
    assert got.shape == (2, 80, net.embed_dim(stages))
    torch.testing.assert_close(got, literal, atol=1e-5, rtol=0)
    weights = torch.randn_like(got)
    grads = [
        torch.autograd.grad((out * weights).sum(), feats, allow_unused=True)
        for out in (got, literal)
    ]
    for ours, theirs in zip(*grads, strict=True):
        assert (ours is None) == (theirs is None)  # stages the head does not read
        if ours is not None:
            torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-3)


def _literal_logits(net, x):
    """The linear head on the built hypercolumn (``probe_input``), upsampled to pixels."""
    scores = net.head(net.probe_input(x, net.features(x)))
    return torch.nn.functional.interpolate(
        scores, size=x.shape[-2:], mode="bilinear", align_corners=False
    )


@pytest.mark.parametrize("head", ["linear", "linear-bands", "linear-indices", "linear-texture"])
def test_a_linear_head_scores_and_learns_as_the_literal_hypercolumn(head):
    """The linear head never builds the hypercolumn; its logits (prediction and training) and
    the gradients of a loss on them (the head's and a trained encoder's) are the literal
    form's, for every head."""
    net = _linear_head_net(head, 4)
    x = torch.rand(2, 4, 64, 96)
    y = torch.randint(0, 2, (2, 64, 96))
    with torch.no_grad():
        net.train()
        net(x)  # BatchNorm running statistics of x
        net.eval()
        torch.testing.assert_close(net(x), _literal_logits(net, x), atol=1e-5, rtol=0)
    net.eval()  # training steps of a trained encoder, BatchNorm statistics held still
    grads = []
    for logits_of in (net, lambda x: _literal_logits(net, x)):
        net.zero_grad()
        torch.nn.functional.cross_entropy(logits_of(x), y).backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and {"head.weight", "head.bias"} <= grads[0].keys()
    assert any(k.startswith("encoder.") for k in grads[0])
    for k, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][k], atol=1e-5, rtol=1e-4, msg=k)


def _imagenet(x):
    """RGB in 0..1 standardised as DINOv2 was trained (what the encoder does first)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def _dinov2_file(tmp_path):
    torch.manual_seed(2)
    vit = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, num_classes=0, dynamic_img_size=True
    )
    path = tmp_path / "dinov2.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    return vit.eval(), path


def test_the_dinov2_encoder_reads_block_8_tokens_as_stego_does(tmp_path):
    vit, path = _dinov2_file(tmp_path)
    net = EncoderUNet("dinov2-vits14", in_channels=3, weights=str(path)).eval()
    assert len(net.encoder.body.blocks) == 8 and net.reductions == [14]
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        (tokens,) = net.features(x)
        want = vit.forward_intermediates(
            _imagenet(x), indices=[7], norm=True, intermediates_only=True, output_fmt="NCHW"
        )[0]
    assert tokens.shape == (2, 384, 16, 16)
    assert torch.allclose(tokens, want, atol=1e-5)
    # no buffer beyond the ViT's own tensors goes into a model file
    assert all(k.startswith("encoder.body.") or k.startswith("head.") for k in net.state_dict())


def test_the_dinov2_encoder_returns_the_last_blocks_up_to_its_cut_as_stages(tmp_path):
    vit, path = _dinov2_file(tmp_path)
    net = EncoderUNet(
        "dinov2-vits14",
        in_channels=3,
        weights=str(path),
        head="linear-texture",
        out_channels=4,
        vit_blocks=4,
    ).eval()
    assert len(net.encoder.body.blocks) == 8 and net.reductions == [14] * 4
    assert net.head.in_channels == 4 * 384 + 3 + 3 + 6  # tokens, bands, indices, texture
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        stages = net.features(x)
        want = vit.forward_intermediates(
            _imagenet(x),
            indices=[4, 5, 6, 7],
            norm=True,
            intermediates_only=True,
            output_fmt="NCHW",
        )
        for got, block in zip(stages, want, strict=True):  # blocks 5 to 8, in order
            assert torch.allclose(got, block, atol=1e-5)
        torch.testing.assert_close(net(x), _literal_logits(net, x), atol=1e-5, rtol=0)
    with pytest.raises(InvalidOptionError, match="vit_blocks must be 1 to 8"):
        EncoderUNet("dinov2-vits14", in_channels=3, vit_blocks=9)
    with pytest.raises(InvalidOptionError, match="dinov2-vits14 encoder, not resnet18-unet"):
        EncoderUNet("resnet18-unet", in_channels=3, vit_blocks=2)


def test_the_dinov2_encoder_takes_n_bands_and_refuses_other_weights(tmp_path):
    vit, path = _dinov2_file(tmp_path)
    net = EncoderUNet("dinov2-vits14", in_channels=5, weights=str(path))
    stem = net.encoder.body.patch_embed.proj.weight
    rgb = vit.state_dict()["patch_embed.proj.weight"]
    assert stem.shape[1] == 5 and stem.requires_grad
    assert torch.allclose(stem[:, :3], rgb * 3 / 5, atol=1e-6)
    resnet = tmp_path / "resnet18.safetensors"
    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(resnet))
    with pytest.raises(WeightsError, match="do not fit"):
        EncoderUNet("dinov2-vits14", in_channels=3, weights=str(resnet))
