"""``encoder_finetuned``: few-shot fine-tuning of a pre-trained encoder with a frozen or trained
encoder and each head, maps under the 8 symmetries, a frozen encoder memoised and left alone."""

import numpy as np
import pytest
import rasterio
import torch
from _cas_data import CLASS_NAMES, miou
from typer.testing import CliRunner

from lcmap import api
from lcmap.cli import app
from lcmap.methods import get_method
from lcmap.methods.base import LabelledPatches
from lcmap.methods.fewshot import load_encoder
from lcmap.methods.loading import load_model
from lcmap.workflows.finetune import finetune
from lcmap.workflows.specs import LabelSpec, MethodSpec, PatchSpec, RunSpec, TilingSpec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("frozen", "head"),
    [
        (True, "decoder"),
        (False, "decoder"),
        (True, "linear"),
        (True, "linear-bands"),
        (True, "linear-indices"),
        (True, "linear-texture"),
    ],
)
def test_fine_tuning_from_the_encoder(encoder_model, tmp_path, frozen, head):
    root, truth_b, _ = encoder_model
    encoder, _ = load_encoder(root / "enc.lcmap")
    assert list(encoder.fewshot_inits()) == ["simclr", "random"]
    before = {k: v.clone() for k, v in encoder.net.encoder.state_dict().items()}
    header = finetune(
        root / "enc.lcmap",
        [root / "a.tif"],
        LabelSpec([root / "a_labels.tif"], class_names=CLASS_NAMES),
        tmp_path / "t.lcmap",
        patches=PatchSpec(count=6, size=64),
        options={"steps": 60, "freeze_encoder": frozen, "head": head},
        run=RunSpec(device="cpu", batch_size=4),
    )
    assert header.method == "encoder_finetuned" and header.extra["init"] == "simclr"
    assert header.extra["head"] == head
    tuned, _ = load_model(tmp_path / "t.lcmap")
    after = tuned.net.encoder.state_dict()
    same = all(torch.equal(before[k], after[k]) for k in before)
    assert same == frozen  # a frozen encoder received no update, BatchNorm statistics included
    result = api.segment(root / "b.tif", tmp_path / "b.tif", model=tmp_path / "t.lcmap")
    with rasterio.open(result.output) as out:
        assert miou(out.read(1), truth_b, 3) >= 0.5


def test_a_tuned_model_maps_under_the_8_symmetries_when_asked(encoder_model, tmp_path):
    root, truth_b, _ = encoder_model
    finetune(
        root / "enc.lcmap",
        [root / "a.tif"],
        LabelSpec([root / "a_labels.tif"], class_names=CLASS_NAMES),
        tmp_path / "t.lcmap",
        patches=PatchSpec(count=6, size=64),
        options={"steps": 30},
        run=RunSpec(device="cpu", batch_size=4),
    )
    plain, _ = load_model(tmp_path / "t.lcmap")
    tta, header = load_model(tmp_path / "t.lcmap", {"tta": True})  # a mapping option
    assert header.config["tta"] is True and plain.cfg.tta is False
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        turned = [plain.predict(x.rot90(k, (-2, -1))).rot90(-k, (-2, -1)) for k in range(4)]
        flipped = [
            plain.predict(x.rot90(k, (-2, -1)).flip(-1)).flip(-1).rot90(-k, (-2, -1))
            for k in range(4)
        ]
        torch.testing.assert_close(tta.predict(x), torch.stack(turned + flipped).mean(0))
    # The same map at any tile size, through the API and the command line's -p alike.
    api.segment(
        root / "b.tif",
        tmp_path / "m32.tif",
        model=tmp_path / "t.lcmap",
        method=MethodSpec(options={"tta": True}),
        tiling=TilingSpec(tile=32),
    )
    args = [
        "segment",
        root / "b.tif",
        "-o",
        tmp_path / "m96.tif",
        "--model",
        tmp_path / "t.lcmap",
        "--tile",
        "96",
        "-p",
        "tta=true",
        "-q",
    ]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    maps = []
    for name in ("m32.tif", "m96.tif"):
        with rasterio.open(tmp_path / name) as src:
            maps.append(src.read(1))
    assert np.array_equal(maps[0], maps[1]) and miou(maps[0], truth_b, 3) >= 0.5


def test_a_frozen_encoder_gets_no_gradient():
    seg = get_method(
        "encoder_finetuned",
        num_classes=3,
        encoder="unet",
        in_channels=3,
        crop_size=32,
        freeze_encoder=True,
        steps=2,
        batch_size=2,
    )
    images, labels = torch.rand(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    seg.train_on(LabelledPatches(images, labels))
    assert all(p.grad is None for p in seg.net.encoder.parameters())
    assert any(p.grad is not None for p in seg.net.head.parameters())


def _dinov2_tuned():
    """A few-step fine-tuning of a frozen DINOv2 encoder (random weights), seeded."""
    return get_method(
        "encoder_finetuned",
        num_classes=3,
        encoder="dinov2-vits14",
        in_channels=3,
        steps=3,
        batch_size=2,
        seed=0,
    )


def test_a_frozen_vit_is_encoded_once_per_window_with_the_same_result(monkeypatch):
    from lcmap.methods import encoder_finetuned
    from lcmap.methods.encoder_finetuned import FrozenFeatures

    seg = _dinov2_tuned()
    net = seg.net.eval()
    x = torch.rand(3, 3, 224, 224)
    calls = []
    features = net.features
    monkeypatch.setattr(net, "features", lambda b: calls.append(len(b)) or features(b))
    memo = FrozenFeatures(net)
    with torch.no_grad():
        want = features(x)
        first, again = memo(x[[0, 1, 0]]), memo(x[[1, 2, 2]])
    assert calls == [2, 1]  # window 0 twice in a batch, window 1 again later: encoded once
    assert torch.allclose(first[0], want[0][[0, 1, 0]], atol=1e-5)
    assert torch.allclose(again[0], want[0][[1, 2, 2]], atol=1e-5)
    with torch.no_grad():  # over its budget the memo keeps nothing and answers the same
        assert torch.allclose(FrozenFeatures(net, max_bytes=0)(x)[0], want[0], atol=1e-5)
        assert calls[-1] == 3
    monkeypatch.undo()
    images, labels = torch.rand(2, 3, 128, 128), torch.randint(0, 3, (2, 128, 128))
    with_memo = seg.train_on(LabelledPatches(images, labels))
    seg2 = _dinov2_tuned()
    monkeypatch.setattr(
        encoder_finetuned.FrozenFeatures, "__call__", lambda self, b: self.net.features(b)
    )
    assert np.allclose(seg2.train_on(LabelledPatches(images, labels)), with_memo, atol=1e-5)


@pytest.mark.parametrize("head", ["linear-texture", "decoder"])
def test_a_frozen_cnn_is_memoised_too_and_trains_as_without_it(monkeypatch, head):
    """BatchNorm held in eval mode, a frozen ResNet's features are a function of the window:
    the memo encodes each distinct window once and the losses are those without it, for the
    linear head and the decoder."""
    from lcmap.methods import encoder_finetuned

    def tuned():
        return get_method(
            "encoder_finetuned",
            num_classes=3,
            encoder="resnet18-unet",
            head=head,
            in_channels=3,
            crop_size=64,
            steps=6,
            batch_size=4,
            seed=0,
        )

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=gen)  # 2 patches, 8 forms each: 16 windows
    labels = torch.randint(0, 3, (2, 64, 64), generator=gen)
    seg = tuned()
    encoded = []
    features = seg.net.features
    monkeypatch.setattr(seg.net, "features", lambda b: encoded.append(len(b)) or features(b))
    with_memo = seg.train_on(LabelledPatches(images, labels))
    assert 0 < sum(encoded) <= 16 < 6 * 4  # never a window twice
    monkeypatch.setattr(encoder_finetuned, "MEMOISE", False)
    assert np.allclose(tuned().train_on(LabelledPatches(images, labels)), with_memo, atol=1e-5)
