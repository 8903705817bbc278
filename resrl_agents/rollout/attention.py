"""Decode-step attention for grouped-query models, registered with transformers.

With a padding mask, transformers' SDPA path copies every key/value head ``n_rep`` times
(``repeat_kv``) before attending: at decode time that copy of the whole cache costs more than the
attention itself. One query token per head lets the ``n_rep`` query heads that share a key/value
head be treated as ``n_rep`` query rows of that head instead: the same attention, no copy.
The decode step's mask is the padding mask itself (the one query is the newest position, so the
causal part is all-true), built once per step as an additive float mask (SDPA turns a bool mask
into one in every layer), or none when no row has padding; transformers would build it through
its general mask functions every step. Everything else (prefill, training forwards) is
transformers' own SDPA and masks.
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


def grouped_decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """``query`` (B, H, 1, d) with ``key``/``value`` (B, Hkv, K, d): attend as (B, Hkv, H/Hkv, d)."""
    b, h, q_len, d = query.shape
    groups = getattr(module, "num_key_value_groups", 1)
    if q_len != 1 or groups == 1 or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    q = query.view(b, h // groups, groups, d)  # head kv*groups + r -> (kv, r), as repeat_kv pairs them
    # attention_mask (B, 1, 1, K) broadcasts over (kv, r)
    out = F.scaled_dot_product_attention(q, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling)
    return out.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None  # (B, 1, H, d)


def decode_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
    """``(B, 1, 1, K)`` additive mask (0 or -inf) from the 2D padding mask when one new token
    attends to the whole cache; None when nothing is padded; transformers' ``sdpa_mask`` otherwise."""
    if (q_length == 1 and q_offset == kv_length - 1 and kv_offset == 0 and attention_mask is not None
            and attention_mask.dim() == 2 and attention_mask.shape[1] == kv_length
            and kwargs.get("mask_function", causal_mask_function) is causal_mask_function
            and kwargs.get("local_size") is None):
        keep = attention_mask.bool()
        if bool(keep.all()):
            return None
        bias = torch.zeros(keep.shape, dtype=kwargs.get("dtype") or torch.float32, device=keep.device)
        return bias.masked_fill_(~keep, float("-inf"))[:, None, None, :]
    return sdpa_mask(batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset,
                     attention_mask=attention_mask, **kwargs)


AttentionInterface.register(NAME, grouped_decode_attention)
AttentionMaskInterface.register(NAME, decode_mask)


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
