"""CAS (Ghosh et al.): DEC maths against hand-computed values, the autoencoder, the pixel map,
the fine-tuned UNet's initialisation, and the model file round trip."""

import math

import numpy as np
import pytest
import torch
from _cas_data import TINY_CAS
from _helpers import DATA

from lcmap.methods import get_method
from lcmap.methods.cas import (
    CasSegmenter,
    clustering_loss,
    masked_mse,
    soft_assignment,
    target_distribution,
)
from lcmap.methods.loading import load_model
from lcmap.models import ModelHeader, save_model
from lcmap.sampling import ArraySampler

pytestmark = pytest.mark.usefixtures("one_thread")


Z = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
MU = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
# By hand: squared distances [[0, 4], [2, 2]]; kernel 1 / (1 + d^2) (alpha = 1).
Q = torch.tensor([[5 / 6, 1 / 6], [1 / 2, 1 / 2]])
# f = column sums = [4/3, 2/3]; q^2 / f = [[25/48, 2/48], [3/16, 6/16]], rows normalised.
P = torch.tensor([[25 / 27, 2 / 27], [1 / 3, 2 / 3]])


def test_soft_assignment_matches_hand_computed_student_t():
    torch.testing.assert_close(soft_assignment(Z, MU, alpha=1.0), Q)


def test_soft_assignment_uses_the_alpha_exponent():
    # alpha = 2: kernel (1 + d^2 / 2) ** -1.5 -> row 0: [1, 3 ** -1.5].
    k = 3**-1.5
    q = soft_assignment(Z[:1], MU, alpha=2.0)
    torch.testing.assert_close(q, torch.tensor([[1 / (1 + k), k / (1 + k)]]))


def test_target_distribution_matches_hand_computed_values():
    torch.testing.assert_close(target_distribution(Q), P)


def test_clustering_loss_is_the_mean_kl_divergence():
    row0 = 25 / 27 * math.log((25 / 27) / (5 / 6)) + 2 / 27 * math.log((2 / 27) / (1 / 6))
    row1 = 1 / 3 * math.log((1 / 3) / (1 / 2)) + 2 / 3 * math.log((2 / 3) / (1 / 2))
    assert clustering_loss(P, Q).item() == pytest.approx((row0 + row1) / 2, rel=1e-5)
    assert clustering_loss(Q, Q).item() == pytest.approx(0.0, abs=1e-7)


def test_clustering_loss_moves_embeddings_towards_the_target_cluster():
    # The tied point (1, 1) has target [1/3, 2/3]: frequency normalisation favours the smaller
    # cluster 1, so a gradient step moves it towards centroid 1 at (2, 0).
    z = Z.clone().requires_grad_(True)
    q = soft_assignment(z, MU)
    clustering_loss(target_distribution(q).detach(), q).backward()
    assert z.grad is not None
    stepped = Z - 0.1 * z.grad
    assert (stepped[1] - MU[1]).norm() < (Z[1] - MU[1]).norm()


def test_masked_mse_ignores_invalid_pixels():
    x = torch.zeros(1, 2, 2, 2)
    rec = torch.ones(1, 2, 2, 2)
    valid = torch.tensor([[[True, False], [False, False]]])
    rec[:, :, 1, 1] = 100.0
    assert masked_mse(rec, x, valid).item() == pytest.approx(1.0)


def test_build_checks_options_and_refuses_other_names():
    with pytest.raises(ValueError, match="patch_size=24 is invalid"):
        CasSegmenter.build(patch_size=24, depth=4)
    m = CasSegmenter.build(
        num_classes=5, patch_size=64, ae_steps=7, dec_steps=7, keep_autoencoder="false"
    )
    assert (m.patch_size, m.ae_steps, m.dec_steps, m.keep_autoencoder) == (64, 7, 7, False)
    assert isinstance(get_method("cas", num_classes=4), CasSegmenter)
    # A generic training flag CAS does not declare is refused, not renamed.
    with pytest.raises(ValueError, match="no option 'crop_size'"):
        CasSegmenter.build(num_classes=5, crop_size=64)


def test_predict_gives_a_soft_assignment_per_pixel(fitted_cas):
    cas, image = fitted_cas
    x = torch.from_numpy(image[:, :50, :70])[None]
    with torch.inference_mode():
        q = cas.predict(x)
    assert q.shape == (1, 3, 50, 70)
    assert torch.all(q >= 0)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(1, 50, 70))
    emb = cas.patch_embeddings(torch.from_numpy(image[:, :32, :32])[None])
    assert emb.shape == (1, TINY_CAS["embed_dim"])


def test_cas_model_file_round_trip_keeps_predictions(fitted_cas, tmp_path):
    cas, image = fitted_cas
    header = ModelHeader(
        method="cas",
        config=cas.config(),
        num_classes=3,
        in_channels=3,
        bands=[1, 2, 3],
        norm_low=[0.0] * 3,
        norm_high=[1.0] * 3,
        class_names=["a", "b", "c"],
        colours=[[1, 2, 3]] * 3,
        extra=cas.header(),
    )
    save_model(tmp_path / "cas.lcmap", cas, header)
    loaded, _ = load_model(tmp_path / "cas.lcmap")
    assert isinstance(loaded, CasSegmenter) and loaded.autoencoder_state is not None
    x = torch.from_numpy(image)[None]
    with torch.inference_mode():
        torch.testing.assert_close(loaded.predict(x), cas.predict(x))


def test_autoencoder_lowers_reconstruction_error_on_a_real_scene():
    rasterio = pytest.importorskip("rasterio")
    path = DATA / "rasterio" / "RGB.byte.tif"
    if not path.exists():
        pytest.skip(f"{path} not available")
    with rasterio.open(path) as src:
        data = src.read(window=((250, 378), (250, 378))).astype(np.float32)
    image = np.clip(data / np.percentile(data, 98), 0, 1)
    x = torch.from_numpy(image)[None]
    valid = torch.ones(1, 128, 128, dtype=torch.bool)
    options = {**TINY_CAS, "ae_steps": 60, "dec_steps": 0, "lr": 3e-3}

    def error(cas):
        cas.net.eval()
        with torch.no_grad():
            return masked_mse(cas.net(x, use_skips=False)[1], x, valid).item()

    torch.manual_seed(0)
    before = CasSegmenter.build(num_classes=3, in_channels=3, **options)
    torch.manual_seed(0)
    after = CasSegmenter.build(num_classes=3, **options)
    after.fit(ArraySampler([image], seed=0))
    assert error(after) < 0.7 * error(before)
