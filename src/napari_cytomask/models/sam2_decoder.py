"""sam2's mask decoder for a batch of prompts, the image-sized work a few prompts at a time.

For every prompt the decoder carries a copy of the image embedding (64×64
tokens of 256 values, 4 MiB) through its two-way transformer and upscaling, so
a batch of 64 prompts moves tensors of 256 to 512 MiB through each addition,
normalisation and activation. On a CPU those memory-bound steps take about as
long as the matrix products. :func:`decode` computes what ``MaskDecoder.forward``
computes, operation by operation, but

* the *image path* (keys, their positional sums and projections, the
  attention over image tokens, the upscaling and the mask products) runs on
  ``chunk`` prompts at a time, so each step's tensors stay in the CPU's cache;
* the *token path* (a few tokens per prompt: self-attention, the token
  projections, the MLPs and the prediction heads) runs on the whole batch, as
  sam2 runs it, so its small matrix products see the same shapes;
* what is the same for every prompt is computed once: before the first layer
  every prompt's keys are the image embedding (plus the one no-mask embedding),
  so the first layer's projections of the image are made once per chunk size,
  and each layer adds the positional encoding to its keys once, not twice.

Each image-path step treats every prompt on its own (per-row matrix products,
per-prompt attention and convolutions, element-wise operations), so splitting
the batch leaves each value's arithmetic unchanged, provided each chunk's
tensors have the memory layout of sam2's batch (the encoder's outputs are
channels-last, and sam2 repeats them per prompt) and no chunk is a lone prompt.
``tests/models/test_sam2_decoder.py`` checks the outputs against sam2's decoder
bit for bit, and the engine's equivalence tests check the masks, boxes and
scores against the stock generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Prompts per image-path step on a CPU (2 to 4 measured the same on a 2-core EPYC; 8 slower).
CPU_CHUNK = 2


def _heads(attn, x: torch.Tensor) -> torch.Tensor:
    return attn._separate_heads(x, attn.num_heads)


def spans(n: int, chunk: int) -> list[slice]:
    """Chunks of ``n`` prompts, none of one prompt unless ``n`` is 1.

    A lone prompt's tensors are laid out differently in memory from a batch's,
    which changes the last bits of the mask logits; a batch of 1 is only
    decoded where sam2 decodes one too.
    """
    starts = list(range(0, n, max(chunk, 2)))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], n], strict=True)]


def _once(func):
    """``func`` of a tensor, computed once per tensor object.

    Before the first layer updates them, every chunk of one size holds the
    same keys object (the prompts share the image and, without mask inputs,
    the dense embedding), so the first layer projects them once per size:
    the same inputs, hence the same outputs.
    """
    memo: dict[int, tuple] = {}

    def call(t: torch.Tensor):
        if id(t) not in memo:
            memo[id(t)] = (t, func(t))  # holding t keeps its id from being reused
        return memo[id(t)][1]

    return call


def _token_to_image(attn, q: torch.Tensor, keys: list, with_pe) -> torch.Tensor:
    """Tokens attending to the image: the image's projections per chunk of prompts.

    ``keys`` is a list of (prompts, their keys); ``with_pe(k)`` is ``k`` plus
    the positional encoding.
    """
    qh = _heads(attn, attn.q_proj(q))
    project = _once(lambda k: (_heads(attn, attn.k_proj(with_pe(k))), _heads(attn, attn.v_proj(k))))
    out = [F.scaled_dot_product_attention(qh[part], *project(k)) for part, k in keys]
    return attn.out_proj(attn._recombine_heads(torch.cat(out)))


def _image_to_token(layer, queries, query_pe, keys: list, with_pe) -> list:
    """The image attending to the tokens, and the keys' residual and norm, per chunk."""
    attn = layer.cross_attn_image_to_token
    q = queries + query_pe
    kh = _heads(attn, attn.k_proj(q))
    vh = _heads(attn, attn.v_proj(queries))
    project = _once(lambda k: _heads(attn, attn.q_proj(with_pe(k))))
    new_keys = []
    for part, k in keys:
        out = F.scaled_dot_product_attention(project(k), kh[part], vh[part])
        new_keys.append((part, layer.norm4(k + attn.out_proj(attn._recombine_heads(out)))))
    return new_keys


def _block(layer, queries, keys: list, query_pe, key_pe: dict):
    """``TwoWayAttentionBlock.forward``, with ``keys`` a list of (prompts, their keys)
    and ``key_pe`` the positional encoding repeated for each chunk size.

    Both cross-attentions add the positional encoding to the same keys, so the
    sum is made once per chunk (sam2 makes it twice; the values are the same) and
    held until the layer ends, as sam2 holds its whole batch's.
    """
    if layer.skip_first_layer_pe:
        queries = layer.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + layer.self_attn(q=q, k=q, v=queries)
    queries = layer.norm1(queries)
    with_pe = _once(lambda k: k + key_pe[len(k)])
    queries = queries + _token_to_image(
        layer.cross_attn_token_to_image, queries + query_pe, keys, with_pe
    )
    queries = layer.norm2(queries)
    queries = layer.norm3(queries + layer.mlp(queries))
    keys = _image_to_token(layer, queries, query_pe, keys, with_pe)
    return queries, keys


def decode(
    decoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    *,
    multimask_output: bool,
    high_res_features: list[torch.Tensor] | None,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-resolution mask logits and predicted IoUs of ``MaskDecoder.forward``, chunked.

    Parameters
    ----------
    decoder
        The model's ``sam_mask_decoder``.
    image_embeddings, image_pe
        ``(1, C, h, w)``: one image's embedding and the dense positional encoding.
    sparse, dense
        The prompt encoder's outputs for ``B`` prompts (``dense`` may be an
        expanded view of one embedding).
    multimask_output
        As in sam2.
    high_res_features
        The image's two high-resolution feature maps (batch 1), or None.
    chunk
        Prompts per image-path step.

    Returns
    -------
    masks, iou_pred
        As the first two outputs of ``MaskDecoder.forward``.
    """
    d = decoder
    n = len(sparse)
    heads = [d.iou_token.weight, d.mask_tokens.weight]
    if d.pred_obj_scores:
        heads.insert(0, d.obj_score_token.weight)
    s = int(d.pred_obj_scores)
    output_tokens = torch.cat(heads, dim=0).unsqueeze(0).expand(n, -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)

    _, c, h, w = image_embeddings.shape
    parts = spans(n, chunk)
    # The encoder's outputs are channels-last: each chunk repeats them as sam2 repeats them
    # for the whole batch, so the matrix products read the same memory layout.
    sizes = {part.stop - part.start for part in parts}
    key_pe = {
        k: torch.repeat_interleave(image_pe, k, dim=0).flatten(2).permute(0, 2, 1) for k in sizes
    }
    embedding = {
        k: torch.repeat_interleave(image_embeddings, k, dim=0) if n > 1 else image_embeddings
        for k in sizes
    }

    # (prompts, keys of those prompts) per chunk. Without mask inputs the dense
    # embedding is one expanded row: every chunk of a size then shares one keys object.
    def initial(part: slice) -> torch.Tensor:
        return (embedding[part.stop - part.start] + dense[part]).flatten(2).permute(0, 2, 1)

    if dense.stride(0) == 0:
        first = {size: initial(slice(0, size)) for size in sizes}
        keys = [(part, first[part.stop - part.start]) for part in parts]
    else:
        keys = [(part, initial(part)) for part in parts]
    t = d.transformer
    queries = tokens
    for layer in t.layers:
        queries, keys = _block(layer, queries, keys, tokens, key_pe)
    with_pe = _once(lambda k: k + key_pe[len(k)])
    queries = queries + _token_to_image(
        t.final_attn_token_to_image, queries + tokens, keys, with_pe
    )
    hs = t.norm_final_attn(queries)

    iou_token_out = hs[:, s, :]
    mask_tokens_out = hs[:, s + 1 : s + 1 + d.num_mask_tokens, :]
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(d.output_hypernetworks_mlps)], dim=1
    )
    masks = []
    for part, k in keys:
        src = k.transpose(1, 2).view(len(k), c, h, w)
        if not d.use_high_res_features:
            up = d.output_upscaling(src)
        else:
            dc1, ln1, act1, dc2, act2 = d.output_upscaling
            feat_s0, feat_s1 = high_res_features
            up = act2(dc2(act1(ln1(dc1(src) + feat_s1))) + feat_s0)
        b, uc, uh, uw = up.shape
        masks.append((hyper_in[part] @ up.view(b, uc, uh * uw)).view(b, -1, uh, uw))
    masks = torch.cat(masks)
    iou_pred = d.iou_prediction_head(iou_token_out)

    if multimask_output:
        return masks[:, 1:, :, :], iou_pred[:, 1:]
    if d.dynamic_multimask_via_stability and not d.training:
        return d._dynamic_multimask_via_stability(masks, iou_pred)
    return masks[:, 0:1, :, :], iou_pred[:, 0:1]
