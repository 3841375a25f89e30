"""The chunked mask decoder against sam2's ``MaskDecoder.forward``, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_cytomask.models.sam2_decoder import decode, spans
from napari_cytomask.models.sam2_models import build_sam2_model

SIZE = 256  # 16×16 image tokens: every step of the real model, at a sixteenth of the work


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_sam2_model("configs/sam2.1/sam2.1_hiera_t.yaml", image_size=SIZE, seed=0)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def features(model):
    """A real image's features from the model's own encoder (channels-last, as sam2 makes them)."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.random((SIZE, SIZE, 3)), (4, 4, 0))
    predictor = SAM2ImagePredictor(model)
    # sam2's predictor hard-codes the feature sizes of a 1024 input.
    predictor._bb_feat_sizes = [(SIZE // 4,) * 2, (SIZE // 8,) * 2, (SIZE // 16,) * 2]
    with torch.no_grad():
        predictor.set_image((image * 255).astype(np.uint8))
    feats = predictor._features
    return feats["image_embed"], feats["high_res_feats"]


def prompts(model, n, mask_input=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 1, 2, generator=g) * SIZE
    labels = torch.ones(n, 1, dtype=torch.int)
    masks = torch.randn(n, 1, SIZE // 4, SIZE // 4, generator=g) if mask_input else None
    return model.sam_prompt_encoder(points=(points, labels), boxes=None, masks=masks)


@pytest.mark.parametrize(
    ("n", "chunk", "multimask", "mask_input"),
    [
        (64, 2, True, False),  # sam2's batch, the engine's chunk
        (64, 3, False, False),
        (9, 4, True, False),  # a short last batch: chunks of 4 and 5, never a lone prompt
        (7, 1, True, False),  # a chunk of 1 is widened to 2
        (1, 2, True, False),  # one prompt, as sam2 decodes one
        (8, 2, False, True),  # mask-to-mask refinement: a dense embedding per prompt
        (16, 16, True, False),  # one chunk: sam2's own order of operations
    ],
)
@torch.no_grad()
def test_decode_equals_sam2s_decoder_bit_for_bit(model, features, n, chunk, multimask, mask_input):
    emb, high = features
    sparse, dense = prompts(model, n, mask_input)
    pe = model.sam_prompt_encoder.get_dense_pe()
    masks, iou, _, _ = model.sam_mask_decoder(
        image_embeddings=emb,
        image_pe=pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=n > 1,
        high_res_features=high,
    )
    ours = decode(
        model.sam_mask_decoder,
        emb,
        pe,
        sparse,
        dense,
        multimask_output=multimask,
        high_res_features=high,
        chunk=chunk,
    )
    assert ours[0].shape == masks.shape == (n, 3 if multimask else 1, SIZE // 4, SIZE // 4)
    assert torch.equal(ours[0], masks)
    assert torch.equal(ours[1], iou)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 64])
@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_spans_cover_every_prompt_once_and_leave_none_alone(n, chunk):
    parts = spans(n, chunk)
    covered = [i for part in parts for i in range(n)[part]]
    assert covered == list(range(n))
    sizes = [part.stop - part.start for part in parts]
    assert n == 1 or min(sizes) >= 2
    assert max(sizes) <= max(chunk, 2) + 1
