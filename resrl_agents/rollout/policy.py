"""The policy interface the rollout loop talks to, and the Hugging Face backend.

A policy maps a batch of prompts (token ids) to sampled continuations with their sampling
log-probs. Backends differ only here; the agent loop is the same for all of them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from resrl_agents.models.hooks import capture_hidden
from resrl_agents.rollout.attention import decode_attention
from resrl_agents.rollout.kv_cache import PrefixStore, RowCache, batch_cache, cut_row


@dataclass(frozen=True)
class Generation:
    """One sampled continuation: exact ids (ending with EOS when the model stopped) and their
    log-probs under the sampling distribution (after temperature / top-p)."""

    ids: tuple[int, ...]
    logp: tuple[float, ...]
    stopped: bool  # True when the model emitted EOS, False when cut at max_new_tokens
    # (n, H) the captured layer's state of each token, at the position its ``hidden_position``
    # names (HFPolicy with ``hidden_layer`` set; else None), on the CPU in the model's dtype
    hidden: torch.Tensor | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0


class Policy(Protocol):
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]: ...


# Called once per decoding step with the prompt index of each live row, the token each sampled
# ``(b,)`` and the model's raw next-token logits it was sampled from ``(b, V)``.
OnStep = Callable[[list[int], torch.Tensor, torch.Tensor], None]


class HFPolicy:
    """Batched sampling from a Hugging Face causal LM with per-episode KV caches.

    One forward prefills the distinct prompts (a GRPO group's identical first prompts once), each
    from the cache of the previous turn when the prompt extends it (``prefix_cache``, see
    ``kv_cache.py``). All rows then decode together, and a row leaves the batch as soon as it
    emits EOS. Models whose cache is not plain full attention (sliding windows, recurrent layers)
    go through ``model.generate``.

    With ``hidden_layer`` set, the own decode loop also returns, per sampled token, that layer's
    hidden state (ResRL weighs the token by it): at the position that predicts the token
    (``hidden_position="predicting"``), or at the token's own (``"own"``: every row's newest token
    is read once more, a finished row's last token included, in the forward that decodes the other
    rows). The training step then needs no forward of its own to get them.
    """

    def __init__(self, model, tokenizer, device: torch.device | str = "cpu", prefix_cache: bool = True,
                 hidden_layer: int | None = None, hidden_position: str = "predicting"):
        self.model = model
        self.device = torch.device(device)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.prefix_cache = prefix_cache
        self.hidden_layer = hidden_layer
        if hidden_position not in ("predicting", "own"):
            raise ValueError(f"hidden_position must be 'predicting' or 'own', got {hidden_position!r}")
        self.hidden_position = hidden_position
        self.store = PrefixStore()
        layers = DynamicCache(config=model.config).layers
        self.own_decode = all(type(layer) is DynamicLayer for layer in layers)
        self.num_layers = len(layers)

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 on_step: OnStep | None = None) -> list[Generation]:
        """Sample a continuation of every prompt; ``on_step`` sees each step's tokens as they are
        sampled (the server streams them), after the whole call on the ``model.generate`` path."""
        if not prompts:
            return []
        was_training = self.model.training
        self.model.eval()
        try:
            if self.own_decode:
                with decode_attention(self.model):
                    return self._decode(prompts, params, on_step)
            return self._hf_generate(prompts, params, on_step)
        finally:
            self.model.train(was_training)

    def release_cache(self) -> None:
        """Drop the kept KV caches (the episodes they belong to are over)."""
        self.store.clear()

    def _prefill(self, prompts: list[tuple[int, ...]], room: int
                 ) -> tuple[Cache, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward over the uncached tail of every prompt: a batch cache with ``room`` free
        positions, its attention mask ``(D, W)``, the next-token logits ``(D, V)`` and the column
        ``(D,)`` of each prompt's last token in the forward's output.

        Row i holds [pads | cached prefix | tail | pads]: cached prefixes are right-aligned at
        column C, tails start there and are right-padded to the longest; positions are explicit.
        """
        hits = [self.store.lookup(p) if self.prefix_cache else None for p in prompts]
        starts = [len(h.ids) if h else 0 for h in hits]
        C = max(starts)
        S = max(len(p) - s for p, s in zip(prompts, starts))
        cache = batch_cache([h.kv if h else None for h in hits], C, C + S + room, self.num_layers)
        ids = torch.full((len(prompts), S), self.pad_id, dtype=torch.long)  # (D, S)
        mask = torch.zeros(len(prompts), C + S, dtype=torch.long)  # (D, C + S)
        for i, (p, s) in enumerate(zip(prompts, starts)):
            ids[i, : len(p) - s] = torch.tensor(p[s:])
            mask[i, C - s: C + len(p) - s] = 1
        pos = torch.tensor(starts)[:, None] + torch.arange(S)  # (D, S)
        ids, mask, pos = ids.to(self.device), mask.to(self.device), pos.to(self.device)
        hidden = self.model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=pos,
                                          past_key_values=cache, use_cache=True).last_hidden_state  # (D, S, H)
        last = torch.tensor([len(p) - s - 1 for p, s in zip(prompts, starts)], device=self.device)
        logits = self.model.get_output_embeddings()(hidden[torch.arange(len(prompts), device=self.device), last])
        return cache, mask, logits.float(), last  # (D, V)

    def _decode(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                on_step: OnStep | None = None) -> list[Generation]:
        version = sum(p._version for p in self.model.parameters())  # bumped by every in-place update
        if self.store.version != version:
            self.store.clear()  # caches from other weights are never reused
        keep_hidden, own = self.hidden_layer is not None, self.hidden_position == "own"
        with capture_hidden(self.model, self.hidden_layer) if keep_hidden else contextlib.nullcontext() as captured:
            distinct = list(dict.fromkeys(tuple(p) for p in prompts))  # identical prompts prefilled once
            cache, mask, logits, last = self._prefill(distinct, params.max_new_tokens + own)
            h = captured.pop()[torch.arange(len(distinct), device=self.device), last] if keep_hidden else None  # (D, H)
            if len(distinct) < len(prompts):
                row = {p: i for i, p in enumerate(distinct)}
                sel = torch.tensor([row[tuple(p)] for p in prompts], device=self.device)
                cache.batch_select_indices(sel)
                mask, logits = mask[sel], logits[sel]
                h = h[sel] if keep_hidden else None  # (b, H)
            pos = torch.tensor([len(p) for p in prompts], device=self.device)  # (b,) next position of each live row
            rng = torch.Generator(device=self.device).manual_seed(params.seed)
            eos = set(self.eos_ids)
            alive = list(range(len(prompts)))  # batch row -> prompt index
            ids: list[list[int]] = [[] for _ in prompts]
            logps: list[list[float]] = [[] for _ in prompts]
            states: list[tuple[torch.Tensor, list[int]]] = []  # per kept forward: (b, H) and its rows' prompts
            saved: list[RowCache] = []
            for step in range(params.max_new_tokens):
                tok, logp = sample(logits, params.temperature, params.top_p, rng)  # (b,), (b,)
                if on_step is not None:
                    on_step(alive, tok, logits)
                last_step = step == params.max_new_tokens - 1
                keep, done = [], []
                for j, (i, t, lp) in enumerate(zip(alive, tok.tolist(), logp.tolist())):
                    ids[i].append(t)
                    logps[i].append(lp)
                    (done if t in eos or last_step else keep).append(j)
                if keep_hidden and not own:  # the states whose logits sampled ``tok``
                    states.append((h, alive))
                if own:  # every row reads its new token once more: the token's own state
                    logits, h, mask, pos = self._forward(tok, cache, mask, pos, captured)
                    if keep_hidden:
                        states.append((h, alive))
                if self.prefix_cache:  # the prompt and the generated tokens the cache holds
                    saved += [RowCache(tuple(prompts[alive[j]]) + tuple(ids[alive[j]][: len(ids[alive[j]]) - (not own)]),
                                       cut_row(cache, j, mask[j].bool())) for j in done]
                if not keep:
                    break
                if done:
                    sel = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(sel)
                    mask, pos, tok = mask[sel], pos[sel], tok[sel]
                    if own:  # the forward above already read the next logits for every row
                        logits, h = logits[sel], (h[sel] if keep_hidden else None)
                    alive = [alive[j] for j in keep]
                if not own:
                    logits, h, mask, pos = self._forward(tok, cache, mask, pos, captured)
        if self.prefix_cache:
            self.store.replace(saved, version)
        hidden = _per_prompt(states, len(prompts)) if keep_hidden else [None] * len(prompts)
        return [Generation(tuple(g), tuple(lp), bool(g) and g[-1] in eos, hs)
                for g, lp, hs in zip(ids, logps, hidden)]

    def _forward(self, tok: torch.Tensor, cache: Cache, mask: torch.Tensor, pos: torch.Tensor, captured
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """One decode forward of ``tok`` ``(b,)``: next-token logits ``(b, V)``, the captured state
        ``(b, H)`` (or None), the attention mask and positions moved one column on."""
        mask = torch.cat([mask, mask.new_ones(len(tok), 1)], dim=1)  # (b, W + 1)
        out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=pos[:, None],
                         past_key_values=cache, use_cache=True)
        h = captured.pop()[:, -1] if self.hidden_layer is not None else None  # (b, H)
        return out.logits[:, -1].float(), h, mask, pos + 1

    def _hf_generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                     on_step: OnStep | None = None) -> list[Generation]:
        """``model.generate`` on left-padded prompts, for caches the own decode loop cannot cut;
        ``on_step`` is replayed from the returned raw logits once it is done."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, p in enumerate(prompts):  # left padding: generation starts at the same column
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p):] = 1
        greedy = params.temperature <= 0
        torch.manual_seed(params.seed)
        out = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=attn.to(self.device),
            max_new_tokens=params.max_new_tokens, do_sample=not greedy,
            temperature=None if greedy else params.temperature, top_p=None if greedy else params.top_p, top_k=None,
            eos_token_id=self.eos_ids, pad_token_id=self.pad_id, output_scores=True,
            output_logits=on_step is not None, return_dict_in_generate=True,
        )
        new = out.sequences[:, width:]  # (B, S)
        scores = torch.stack(out.scores, dim=1).float()  # (B, S, V) processed logits
        logp = torch.log_softmax(scores, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, S)
        gens = [self._trim(new[i].tolist(), logp[i].tolist()) for i in range(len(prompts))]
        if on_step is not None:
            for s, logits in enumerate(out.logits):  # (B, V) raw logits of step s
                alive = [i for i, g in enumerate(gens) if len(g.ids) > s]
                if alive:
                    on_step(alive, new[alive, s], logits[alive].float())
        return gens

    def _trim(self, ids: list[int], logp: list[float]) -> Generation:
        for j, tok in enumerate(ids):
            if tok in self.eos_ids:
                return Generation(tuple(ids[: j + 1]), tuple(logp[: j + 1]), True)
        return Generation(tuple(ids), tuple(logp), False)


def sample(logits: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row of ``logits`` (b, V) and its log-prob under the distribution sampled from:
    softmax(logits / temperature) restricted to the top-p nucleus (HF's processed scores); greedy
    (temperature 0) takes the argmax and reports its log-prob under softmax(logits)."""
    if temperature <= 0:
        logp_all = torch.log_softmax(logits, dim=-1)  # (b, V)
        tok = logp_all.argmax(dim=-1)
    else:
        z = logits / temperature
        if top_p < 1.0:
            z = nucleus(z, top_p)
        logp_all = torch.log_softmax(z, dim=-1)
        # inverse CDF: the first token whose cumulative mass reaches u ~ U(0, total]. One uniform
        # per row: ~15x faster on CPU than an exponential race or torch.multinomial (which draw
        # one variate per vocabulary entry). A token of zero mass never reaches u.
        cdf = logp_all.exp().cumsum(dim=-1)  # (b, V)
        u = (1.0 - torch.rand(cdf.shape[0], 1, generator=rng, device=cdf.device)) * cdf[:, -1:]
        tok = torch.searchsorted(cdf, u).squeeze(-1)
    return tok, logp_all.gather(-1, tok[:, None]).squeeze(-1)


def nucleus(z: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits outside the smallest set of top tokens holding ``top_p`` of the mass set to -inf
    (the top token always stays), as transformers' TopPLogitsWarper does."""
    sorted_z, order = torch.sort(z, dim=-1)  # ascending
    cum = torch.softmax(sorted_z, dim=-1).cumsum(dim=-1)
    drop = cum <= 1 - top_p
    drop[..., -1] = False
    return z.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def _eos_ids(model, tokenizer) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def _per_prompt(states: list[tuple[torch.Tensor, list[int]]], n: int) -> list[torch.Tensor]:
    """Each prompt's ``(tokens, H)`` states on the CPU, from the decode forwards' ``(b, H)`` states
    and the prompt index of each of their rows (one state per row and forward, in token order)."""
    flat = torch.cat([h for h, _ in states]).cpu()  # (sum of b over forwards, H)
    where: list[list[int]] = [[] for _ in range(n)]
    offset = 0
    for h, rows in states:
        for j, i in enumerate(rows):
            where[i].append(offset + j)
        offset += len(rows)
    return [flat[w] for w in where]
