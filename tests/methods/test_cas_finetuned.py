"""``lcmap.methods.cas_finetuned`` (Ghosh et al.): the tuned UNet starts from the CAS model as
``init`` says, weighs rare classes up, and learns a synthetic scene from labelled patches."""

import numpy as np
import pytest
import torch
from _cas_data import three_class_image

from lcmap.methods.base import LabelledPatches
from lcmap.methods.cas_finetuned import CasFinetunedSegmenter, class_weights
from lcmap.sampling import ArraySampler

pytestmark = pytest.mark.usefixtures("one_thread")


def test_finetuned_from_cas_starts_as_the_pretrained_decoder(fitted_cas):
    cas, image = fitted_cas
    tuned = CasFinetunedSegmenter.from_cas(cas, num_classes=3, init="cas")
    assert tuned.net is not None and cas.net is not None
    net = tuned.net.eval()
    x = torch.from_numpy(image[:, :32, :32])[None]
    with torch.no_grad():
        z, skips = net.encode(x)
        # Skip slices are zeroed: adding the skips back changes nothing at first.
        torch.testing.assert_close(net.decode(z, skips), net.decode(z, None))
        torch.testing.assert_close(z, cas.net.eval().encode(x)[0])


def test_finetuned_init_autoencoder_and_random(fitted_cas):
    cas, _ = fitted_cas
    ae = CasFinetunedSegmenter.from_cas(cas, num_classes=3, init="autoencoder")
    assert cas.autoencoder_state is not None and ae.net is not None
    torch.testing.assert_close(ae.net.stem[0].weight, cas.autoencoder_state["stem.0.weight"])
    assert not torch.equal(ae.net.stem[0].weight, cas.net.stem[0].weight)
    torch.manual_seed(1)
    rnd = CasFinetunedSegmenter.from_cas(cas, num_classes=3, init="random")
    assert not torch.equal(rnd.net.stem[0].weight, cas.net.stem[0].weight)
    with pytest.raises(ValueError, match="init 'dec' is unknown"):
        CasFinetunedSegmenter.from_cas(cas, num_classes=3, init="dec")


def test_class_weights_are_inverse_frequency_clipped():
    labels = torch.tensor([0, 0, 0, 1, 255, 255])
    torch.testing.assert_close(class_weights(labels, 3), torch.tensor([2 / 3, 2.0, 0.0]))
    rare = torch.tensor([0] * 1000 + [1])
    w = class_weights(rare, 2, max_ratio=10.0)
    assert w[1] / w[0] == pytest.approx(10.0)


def test_finetuned_learns_a_synthetic_three_class_scene():
    torch.manual_seed(0)
    image, truth = three_class_image(seed=1)
    tuned = CasFinetunedSegmenter.build(
        num_classes=3, width=4, depth=2, embed_dim=8, steps=60, batch_size=4
    )
    sampler = ArraySampler([image], labels=[truth.astype(np.int64)], seed=0)
    batch = sampler.sample(4, 32)
    tuned.train_on(LabelledPatches(batch.image, batch.labels))
    test, test_truth = three_class_image(seed=2)
    with torch.inference_mode():
        pred = tuned.predict(torch.from_numpy(test)[None]).argmax(dim=1)[0].numpy()
    assert (pred == test_truth).mean() > 0.9
