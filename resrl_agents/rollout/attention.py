"""Rollout attention for grouped-query models, registered with transformers.

With a padding mask, transformers' SDPA path copies every key/value head ``n_rep`` times
(``repeat_kv``) before attending: a copy of the whole cache per layer and forward. At decode
time (one query token per head) the ``n_rep`` query heads that share a key/value head are treated
as ``n_rep`` query rows of that head instead: the same attention, no copy. Prefill forwards on
CPU pass the grouped heads to SDPA with ``enable_gqa`` (with a mask, transformers only does that
on XPU/MPS; elsewhere CUDA's kernels would fall back to the math path, so it stays as it is).

Masks are built once per forward as additive float masks (SDPA turns a bool mask into one in
every layer). At decode time the mask is the padding mask itself (the one query is the newest
position, so the causal part is all-true), or none when no row has padding; transformers would
build it through its general mask functions every step. Training forwards never use this
implementation (``decode_attention`` switches it on around generation only).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, causal_mask_function, sdpa_mask

NAME = "resrl_sdpa"


def grouped_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """``query`` (B, H, S, d) with ``key``/``value`` (B, Hkv, K, d) -> (B, S, H, d), without
    repeating key/value heads; transformers' SDPA where that does not apply."""
    b, h, q_len, d = query.shape
    groups = getattr(module, "num_key_value_groups", 1)
    if (groups == 1 or attention_mask is None or kwargs.get("position_bias") is not None
            or kwargs.get("cache") is not None or (q_len > 1 and query.device.type != "cpu")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if q_len > 1:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                             scale=scaling, enable_gqa=True)  # (B, H, S, d)
        return out.transpose(1, 2).contiguous(), None
    q = query.view(b, h // groups, groups, d)  # head kv*groups + r -> (kv, r), as repeat_kv pairs them
    # attention_mask (B, 1, 1, K) broadcasts over (kv, r)
    out = F.scaled_dot_product_attention(q, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling)
    return out.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None  # (B, 1, H, d)


def _additive(keep: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Bool mask (True = attend) as 0 / the dtype's lowest value, the form SDPA adds to scores."""
    dtype = dtype or torch.float32
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min)


def rollout_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
    """``(B, 1, S, K)`` additive mask. One new token attending to the whole cache: the 2D padding
    mask, or None when nothing is padded; otherwise transformers' ``sdpa_mask``, converted once."""
    dtype = kwargs.get("dtype")
    if (q_length == 1 and q_offset == kv_length - 1 and kv_offset == 0 and attention_mask is not None
            and attention_mask.dim() == 2 and attention_mask.shape[1] == kv_length
            and kwargs.get("mask_function", causal_mask_function) is causal_mask_function
            and kwargs.get("local_size") is None):
        keep = attention_mask.bool()
        return None if bool(keep.all()) else _additive(keep, dtype)[:, None, None, :]
    mask = sdpa_mask(batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset,
                     attention_mask=attention_mask, **kwargs)
    if isinstance(mask, torch.Tensor) and not mask.is_floating_point():
        return _additive(mask.bool(), dtype)
    return mask


AttentionInterface.register(NAME, grouped_attention)
AttentionMaskInterface.register(NAME, rollout_mask)


@contextmanager
def decode_attention(model) -> Iterator[None]:
    """Use the grouped decode attention inside the block when the model runs transformers' SDPA."""
    config = model.config
    if config._attn_implementation != "sdpa":
        yield
        return
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"
