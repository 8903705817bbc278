"""Reading one layer's hidden states out of a forward, shared by the decode loop (which keeps the
states that predict each sampled token) and the trainer's scoring pass."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def capture_hidden(model, layer: int) -> Iterator[list[torch.Tensor]]:
    """Capture ``hidden_states[layer]`` (HF convention: 0 = embeddings, L = final norm output)
    of every forward while the context is open, via a forward hook (no ``output_hidden_states``,
    which would keep every layer alive)."""
    decoder = model.get_decoder()
    L = len(decoder.layers)
    idx = layer % (L + 1)
    module = decoder.embed_tokens if idx == 0 else decoder.norm if idx == L else decoder.layers[idx - 1]
    out: list[torch.Tensor] = []

    def hook(_mod, _inp, output):
        out.append((output[0] if isinstance(output, tuple) else output).detach())

    handle = module.register_forward_hook(hook)
    try:
        yield out
    finally:
        handle.remove()
