"""The batcher with the real tiny model: one generate call for concurrent requests, per-request
budgets, seeds, errors and back-pressure."""

from __future__ import annotations

import pytest

from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import HFPolicy, SamplingParams
from resrl_agents.serving.batcher import Batcher, Overloaded


def _prompts(tok, k):
    r = ChatRenderer(tok)
    return [r.prompt([{"role": "user", "content": f"What is {i} + {i * 7}?"}])[1] for i in range(k)]


def test_concurrent_requests_share_one_generate_call(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompts = _prompts(tok, 8)
    budgets = [3, 5, 8, 8, 2, 6, 7, 4]
    # the worker waits (up to 5 s) until the batch holds 8 rows, so all 8 requests are in it
    batcher = Batcher(policy, max_batch_size=8, max_wait_s=5.0)
    try:
        futures = [batcher.submit([p], max_new_tokens=b, temperature=0.0, top_p=1.0, seed=None)
                   for p, b in zip(prompts, budgets)]
        results = [f.result(timeout=60) for f in futures]
    finally:
        batcher.close()
    assert batcher.stats.batches == 1 and batcher.stats.max_batch_rows == 8 and batcher.stats.requests == 8
    for p, b, [gen] in zip(prompts, budgets, results):
        [alone] = policy.generate([p], SamplingParams(b, 0.0, 1.0, 0))  # greedy, unbatched, own budget
        assert len(gen.ids) <= b
        assert gen.ids == alone.ids and gen.stopped == alone.stopped


def test_seeded_sampling_is_reproducible_and_n_rows_differ(tiny):
    model, tok = tiny
    [p] = _prompts(tok, 1)
    batcher = Batcher(HFPolicy(model, tok), max_batch_size=4, max_wait_s=0.0)
    try:
        a = batcher.submit([p] * 4, max_new_tokens=12, temperature=1.0, top_p=1.0, seed=11).result(60)
        b = batcher.submit([p] * 4, max_new_tokens=12, temperature=1.0, top_p=1.0, seed=11).result(60)
        c = batcher.submit([p] * 4, max_new_tokens=12, temperature=1.0, top_p=1.0, seed=12).result(60)
    finally:
        batcher.close()
    assert [g.ids for g in a] == [g.ids for g in b]  # same seed, same rows -> same samples
    assert len({g.ids for g in a}) > 1  # the n rows of one request are independent samples
    assert [g.ids for g in a] != [g.ids for g in c]


def test_generate_errors_reach_the_request_and_the_worker_survives(tiny):
    model, tok = tiny
    [p] = _prompts(tok, 1)
    batcher = Batcher(HFPolicy(model, tok), max_wait_s=0.0)
    try:
        bad = batcher.submit([[10**7]], max_new_tokens=2, temperature=0.0, top_p=1.0, seed=None)  # id beyond vocab
        with pytest.raises(Exception):
            bad.result(60)
        good = batcher.submit([p], max_new_tokens=2, temperature=0.0, top_p=1.0, seed=None).result(60)
        assert len(good[0].ids) <= 2
    finally:
        batcher.close()


def test_full_queue_is_refused_and_closed_batcher_refuses(tiny):
    model, tok = tiny
    batcher = Batcher(HFPolicy(model, tok), max_pending=0)
    with pytest.raises(Overloaded):
        batcher.submit([[1, 2]], max_new_tokens=1, temperature=0.0, top_p=1.0, seed=None)
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit([[1, 2]], max_new_tokens=1, temperature=0.0, top_p=1.0, seed=None)


def test_steps_reach_each_request_before_it_resolves_with_its_logprobs(tiny):
    model, tok = tiny
    prompts = _prompts(tok, 2)
    batcher = Batcher(HFPolicy(model, tok), max_batch_size=3, max_wait_s=5.0)
    seen: dict[str, list] = {"a": [], "b": []}

    def listener(key, future_box):
        def on_step(outs):
            assert future_box[0] is None or not future_box[0].done()  # steps come while the batch decodes
            seen[key].extend(outs)
        return on_step

    box_a, box_b = [None], [None]
    try:
        box_a[0] = batcher.submit([prompts[0]] * 2, max_new_tokens=9, temperature=1.0, top_p=1.0, seed=3,
                                  top_logprobs=2, on_step=listener("a", box_a))
        box_b[0] = batcher.submit([prompts[1]], max_new_tokens=4, temperature=1.0, top_p=1.0, seed=3,
                                  on_step=listener("b", box_b))
        a, b = box_a[0].result(60), box_b[0].result(60)
    finally:
        batcher.close()
    assert batcher.stats.batches == 1  # same sampling key: one generate call for both
    for k, s in enumerate(a):
        assert [o.token for o in seen["a"] if o.row == k] == list(s.ids)
        assert [o.logprob for o in seen["a"] if o.row == k] == list(s.logprobs)
        assert all(len(lp.top) == 2 and lp.top[0][1] >= lp.logprob for lp in s.logprobs)
    assert [o.token for o in seen["b"]] == list(b[0].ids) and len(b[0].ids) <= 4  # nothing past its budget
    assert b[0].logprobs is None and all(o.logprob is None for o in seen["b"])
