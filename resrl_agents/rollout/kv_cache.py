"""Per-episode KV caches carried from one turn of the agent loop to the next.

In the ``full`` layout an episode's next prompt is its previous prompt, then the generated ids,
then the new observation. The keys/values of all but the last generated token already exist when
the turn ends, so re-prefilling them every turn repeats O(context) work per turn (O(context²) in
attention). :class:`PrefixStore` keeps, for every row of the last ``generate`` call, the cache of
the tokens it fed the model and hands it back when a new prompt extends those tokens exactly.

Prompts that only begin like a stored row (``window:k`` prompts: the same system prompt and task,
then a different history each turn) reuse the keys/values of the common prefix: position t's
keys/values depend only on tokens 0..t, so a stored row's first n entries are exactly those of
any sequence that starts with the same n tokens.

Caches are plain per-layer ``(k, v)`` tensors of one row, ``(1, h, T, d)``: rows of different
lengths are joined into a left-padded batch cache (pads are zeros the model never computes, and
the attention mask hides them) and cut back into rows when a row stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v), each (1, h, T, d)


@dataclass(frozen=True)
class RowCache:
    """Keys/values of exactly the tokens ``ids``, in order, for one sequence."""

    ids: tuple[int, ...]
    kv: KV


class PrefixStore:
    """The row caches of the last call, looked up by token prefix.

    Only the last call's rows are kept: in the agent loop every live episode's next prompt extends
    its previous turn (or, in ``window:k``, starts like it), and an episode that ended never comes
    back. ``version`` is a fingerprint of the weights; caches computed under other weights are
    dropped, never reused.
    """

    HEAD = 16  # rows are indexed by their first HEAD tokens for common-prefix lookups
    MIN_SHARED = 32  # shorter common prefixes are not worth a lookup

    def __init__(self) -> None:
        self._by_len: dict[int, dict[tuple[int, ...], RowCache]] = {}
        self._by_head: dict[tuple[int, ...], list[RowCache]] = {}
        self.version: int | None = None

    def lookup(self, prompt: Sequence[int]) -> RowCache | None:
        """The longest stored cache whose ids are a proper prefix of ``prompt`` (at least one new
        token must remain to produce the next logits); else the longest common prefix (at least
        ``MIN_SHARED`` tokens) of ``prompt`` with a stored row, cut from that row."""
        prompt = tuple(prompt)
        for n in sorted(self._by_len, reverse=True):
            if n < len(prompt):
                hit = self._by_len[n].get(prompt[:n])
                if hit is not None:
                    return hit
        best, best_n = None, self.MIN_SHARED - 1
        for row in self._by_head.get(prompt[:self.HEAD], ()):
            n = _common_prefix(row.ids, prompt, len(prompt) - 1)
            if n > best_n:
                best, best_n = row, n
        if best is None:
            return None
        return RowCache(best.ids[:best_n], [(k[:, :, :best_n], v[:, :, :best_n]) for k, v in best.kv])

    def replace(self, rows: Sequence[RowCache], version: int) -> None:
        self._by_len, self._by_head = {}, {}
        for r in rows:
            self._by_len.setdefault(len(r.ids), {})[r.ids] = r
            if len(r.ids) >= self.MIN_SHARED:
                self._by_head.setdefault(r.ids[:self.HEAD], []).append(r)
        self.version = version

    def clear(self) -> None:
        self._by_len, self._by_head, self.version = {}, {}, None

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_len.values())


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...], limit: int) -> int:
    """Length of the common prefix of ``a`` and ``b``, at most ``limit`` (binary search on slice
    equality: ~log2(n) C-level comparisons instead of a Python loop over tokens)."""
    lo, hi = 0, min(len(a), len(b), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ReservedLayer(DynamicLayer):
    """A cache layer whose keys/values live in a buffer reserved for the whole call: a forward
    writes its columns in place, where ``DynamicLayer`` copies the whole cache (``torch.cat``)
    every token. Without initial contents the buffer is allocated at the first update."""

    def __init__(self, capacity: int, k: torch.Tensor | None = None, v: torch.Tensor | None = None, length: int = 0):
        super().__init__()
        self.capacity, self._k, self._v, self._n = capacity, k, v, length  # (B, h, capacity, d)
        if k is not None:
            self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
            self._view()

    def _view(self) -> None:
        self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        b, h, n, d = key_states.shape
        if self._k is None:
            self._k = key_states.new_zeros(b, h, self.capacity, d)
            self._v = value_states.new_zeros(b, h, self.capacity, value_states.shape[3])
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
        if self._n + n > self.capacity:
            raise RuntimeError(f"reserved KV cache full ({self.capacity} positions)")
        self._k[:, :, self._n:self._n + n] = key_states
        self._v[:, :, self._n:self._n + n] = value_states
        self._n += n
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._k is not None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._view()


def batch_cache(rows: Sequence[KV | None], width: int, capacity: int, num_layers: int) -> Cache:
    """Join row caches into one batch cache, each row right-aligned at ``width`` positions, with room
    for ``capacity - width`` more (``None``: a row with nothing cached).

    Positions left of a row's tokens are zeros (finite, so a masked-out key never turns an attention
    output into NaN); the caller's attention mask hides them.
    """
    known = [r for r in rows if r is not None]
    if not known or width == 0:
        return Cache(layers=[ReservedLayer(capacity) for _ in range(num_layers)])
    layers = []
    for layer in range(num_layers):
        k0, v0 = known[0][layer]  # (1, h, T, d)
        k = k0.new_zeros(len(rows), k0.shape[1], capacity, k0.shape[3])  # (B, h, capacity, d)
        v = v0.new_zeros(len(rows), v0.shape[1], capacity, v0.shape[3])
        for i, row in enumerate(rows):
            if row is not None:
                rk, rv = row[layer]  # (1, h, T_i, d)
                k[i, :, width - rk.shape[2]:width] = rk[0]
                v[i, :, width - rv.shape[2]:width] = rv[0]
        layers.append(ReservedLayer(capacity, k, v, width))
    return Cache(layers=layers)


def cut_row(cache: Cache, i: int, valid: torch.Tensor) -> KV:
    """Row ``i`` of a padded batch cache as a ``(1, h, T, d)`` row of its ``valid`` (bool over the
    cached positions) entries, in order: a copy, so the batch buffer can be freed.

    A row's valid positions are a few contiguous runs (cached prefix and prompt tail, then the
    generated tokens after the tail's right padding); copying runs is ~4x faster than boolean
    indexing."""
    runs = _runs(valid)
    return [(_gather(layer.keys[i:i + 1], runs), _gather(layer.values[i:i + 1], runs)) for layer in cache.layers]


def _runs(valid: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D bool tensor."""
    edges = torch.diff(valid.to(torch.int8), prepend=valid.new_zeros(1, dtype=torch.int8),
                       append=valid.new_zeros(1, dtype=torch.int8)).nonzero().squeeze(1).tolist()
    return list(zip(edges[::2], edges[1::2]))


def _gather(x: torch.Tensor, runs: list[tuple[int, int]]) -> torch.Tensor:
    if len(runs) == 1:
        return x[:, :, runs[0][0]:runs[0][1]].clone()
    return torch.cat([x[:, :, a:b] for a, b in runs], dim=2)
