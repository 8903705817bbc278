"""Request batching for the server: concurrent requests become one ``Policy.generate`` call.

One worker thread owns the model. It takes the first queued request, waits up to ``max_wait_s``
for more (until ``max_batch_size`` sequences), groups what it got by sampling settings, and runs
one ``generate`` per group. Requests in a group must share (temperature, top_p, seed) because
``HFPolicy.generate`` takes one ``SamplingParams`` per call; greedy requests all share one group
(seed and top_p do not matter then). ``max_new_tokens`` may differ: the group generates up to the
largest and each row is cut back to its own budget (a row's tokens do not depend on the budget).

Requests without a seed are batched together under a seed drawn from the batcher's own RNG.
A request with an explicit seed and sampling is only batched with requests of the same seed, so
its samples do not depend on what else was in flight.

Streaming: the policy reports every decoding step (``HFPolicy.generate(on_step=...)``), and the
batcher hands each request its rows' new tokens as :class:`StepOut` events, with the model's
log-probs when the request asked for them, while the rest of the batch is still decoding.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from resrl_agents.rollout.policy import Generation, OnStep, SamplingParams


class Overloaded(RuntimeError):
    """More requests are queued than ``max_pending``."""


class SteppingPolicy(Protocol):
    """A policy that reports its decoding steps (``HFPolicy``)."""

    eos_ids: list[int]

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                 on_step: OnStep | None = None) -> list[Generation]: ...


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-prob under the model's raw next-token distribution (no temperature
    or top-p) and the ``top`` most likely tokens there, as (id, log-prob), most likely first."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class StepOut:
    """One new token of row ``row`` (of the request's n rows) and its log-probs when requested."""

    row: int
    token: int
    logprob: TokenLogprob | None


@dataclass(frozen=True)
class Sample:
    """One answered row: exact ids (with EOS when the model stopped) and, when requested, one
    :class:`TokenLogprob` per id."""

    ids: tuple[int, ...]
    stopped: bool
    logprobs: tuple[TokenLogprob, ...] | None


@dataclass
class _Request:
    prompts: list[list[int]]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    top_logprobs: int | None  # None: no log-probs; k: the token's log-prob and the top k
    on_step: Callable[[list[StepOut]], None] | None
    future: Future = field(default_factory=Future)
    logprobs: list[list[TokenLogprob]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.logprobs = [[] for _ in self.prompts]
        self.counts = [0] * len(self.prompts)

    @property
    def key(self) -> tuple:
        if self.temperature <= 0:
            return (0.0, 1.0, None)
        return (self.temperature, self.top_p, self.seed)


@dataclass
class BatcherStats:
    batches: int = 0  # generate calls
    requests: int = 0  # requests answered
    sequences: int = 0  # rows generated
    max_batch_rows: int = 0  # largest generate call (rows)


class Batcher:
    """Background batcher over a ``Policy`` (see the module docstring)."""

    def __init__(self, policy: SteppingPolicy, *, max_batch_size: int = 32, max_wait_s: float = 0.01,
                 max_pending: int = 1024, seed: int = 0):
        self.policy = policy
        self.max_batch_size, self.max_wait_s, self.max_pending = max(1, max_batch_size), max_wait_s, max_pending
        self.stats = BatcherStats()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._rng = random.Random(seed)
        self._thread = threading.Thread(target=self._loop, name="resrl-batcher", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float,
               top_p: float, seed: int | None, top_logprobs: int | None = None,
               on_step: Callable[[list[StepOut]], None] | None = None) -> Future:
        """Queue ``prompts`` (the n rows of one request); the future resolves to their
        :class:`Sample` s. ``on_step`` is called from the worker thread with each step's new
        tokens of these rows, before the future resolves."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        if self._queue.qsize() >= self.max_pending:
            raise Overloaded(f"{self._queue.qsize()} requests are already queued")
        req = _Request([list(p) for p in prompts], max_new_tokens, temperature, top_p, seed, top_logprobs, on_step)
        self._queue.put(req)
        return req.future

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after the requests already taken; fail the ones still queued."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout_s)
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                return
            if req is not None and not req.future.done():
                req.future.set_exception(RuntimeError("server is shutting down"))

    # ------------------------------------------------------------------ worker
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            for group in _groups(batch, self.max_batch_size):
                self._run(group)
            if stop:
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` plus whatever arrives within ``max_wait_s`` (up to ``max_batch_size`` rows)."""
        batch, rows = [first], len(first.prompts)
        deadline = time.monotonic() + self.max_wait_s
        while rows < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                req = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if req is None:
                return batch, True
            batch.append(req)
            rows += len(req.prompts)
        return batch, False

    def _run(self, group: list[_Request]) -> None:
        temperature, top_p, seed = group[0].key
        if seed is None:
            seed = self._rng.randrange(2**31)
        prompts = [p for r in group for p in r.prompts]
        params = SamplingParams(max(r.max_new_tokens for r in group), temperature, top_p, seed)
        owners = [(r, k) for r in group for k in range(len(r.prompts))]  # prompt index -> (request, row)
        try:
            gens = self.policy.generate(prompts, params, on_step=lambda alive, tok, logits: _dispatch(
                [owners[i] for i in alive], tok, logits))
        except Exception as e:  # the requests fail, the server lives
            for r in group:
                r.future.set_exception(e)
            return
        self.stats.batches += 1
        self.stats.sequences += len(prompts)
        self.stats.max_batch_rows = max(self.stats.max_batch_rows, len(prompts))
        i = 0
        for r in group:
            mine = [_sample(g, r, k) for k, g in enumerate(gens[i:i + len(r.prompts)])]
            i += len(r.prompts)
            self.stats.requests += 1
            r.future.set_result(mine)


def _dispatch(rows: list[tuple[_Request, int]], tok: torch.Tensor, logits: torch.Tensor) -> None:
    """One decoding step, handed to its requests: ``rows[j]`` owns batch row j, ``tok`` (b,) and
    ``logits`` (b, V) as the policy sampled them. Rows past their request's budget are skipped."""
    toks = tok.tolist()  # one device sync per step
    live = [j for j, (r, k) in enumerate(rows) if r.counts[k] < r.max_new_tokens]
    want = [j for j in live if rows[j][0].top_logprobs is not None]
    lps: dict[int, TokenLogprob] = {}
    if want:
        sel = torch.tensor(want, device=logits.device)
        logp_all = torch.log_softmax(logits[sel].float(), dim=-1)  # (w, V)
        tok_lp = logp_all.gather(-1, tok[sel][:, None]).squeeze(-1).tolist()  # (w,)
        k_max = max(rows[j][0].top_logprobs for j in want)
        top_lp, top_id = logp_all.topk(k_max, dim=-1) if k_max else (logp_all[:, :0], logp_all[:, :0].long())
        top_lp, top_id = top_lp.tolist(), top_id.tolist()
        for w, j in enumerate(want):
            k = rows[j][0].top_logprobs
            lps[j] = TokenLogprob(toks[j], tok_lp[w], tuple(zip(top_id[w][:k], top_lp[w][:k])))
    events: dict[int, tuple[_Request, list[StepOut]]] = {}
    for j in live:
        r, k = rows[j]
        r.counts[k] += 1
        if j in lps:
            r.logprobs[k].append(lps[j])
        events.setdefault(id(r), (r, []))[1].append(StepOut(k, toks[j], lps.get(j)))
    for r, outs in events.values():
        if r.on_step is not None:
            try:
                r.on_step(outs)
            except Exception:  # a listener that went away (client disconnected) stops listening
                r.on_step = None


def _groups(batch: list[_Request], max_rows: int) -> list[list[_Request]]:
    """Requests grouped by sampling key (first-seen order), each group at most ``max_rows`` rows
    (a single request larger than that forms its own group)."""
    by_key: dict[tuple, list[list[_Request]]] = {}
    for r in batch:
        chunks = by_key.setdefault(r.key, [[]])
        if chunks[-1] and sum(len(x.prompts) for x in chunks[-1]) + len(r.prompts) > max_rows:
            chunks.append([])
        chunks[-1].append(r)
    return [c for chunks in by_key.values() for c in chunks]


def _sample(g: Generation, r: _Request, k: int) -> Sample:
    """Row ``k`` of request ``r``, cut back to its budget when generated with a larger one."""
    n = min(len(g.ids), r.max_new_tokens)
    lps = tuple(r.logprobs[k][:n]) if r.top_logprobs is not None else None
    return Sample(g.ids[:n], g.stopped and n == len(g.ids), lps)
