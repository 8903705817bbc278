"""HFPolicy's own decode loop: per-episode KV reuse, grouped decode attention, sampling."""

from __future__ import annotations

import random
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from transformers.generation.logits_process import TopPLogitsWarper

from resrl_agents.rollout.attention import grouped_attention, rollout_mask
from resrl_agents.rollout.policy import HFPolicy, SamplingParams, nucleus, sample


def _prompts(n=4, seed=0):
    rng = random.Random(seed)
    return [[rng.randrange(5, 500) for _ in range(rng.randrange(20, 60))] for _ in range(n)]


def _turns(policy, prompts, params, turns=3):
    """Agent-loop-like calls: each next prompt = prompt + generated ids + a fixed observation."""
    prompts, out = [list(p) for p in prompts], []
    for t in range(turns):
        gens = policy.generate(prompts, SamplingParams(params.max_new_tokens, params.temperature, params.top_p, seed=t))
        out.append(gens)
        for p, g in zip(prompts, gens):
            p += list(g.ids) + [7, 8, 9]
    return out


@contextmanager
def _fed_tokens(model):
    """Counts token positions fed to the decoder (a forward pre-hook), padding included."""
    fed = [0]
    handle = model.get_decoder().register_forward_pre_hook(lambda m, a, kw: fed.__setitem__(0, fed[0] + kw["input_ids"].numel()),
                                             with_kwargs=True)
    try:
        yield fed
    finally:
        handle.remove()


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (1.0, 0.9)])
def test_prefix_cache_reuses_turns_and_changes_nothing(tiny, temperature, top_p):
    model, tok = tiny
    cached, fresh = HFPolicy(model, tok, prefix_cache=True), HFPolicy(model, tok, prefix_cache=False)
    params = SamplingParams(16, temperature, top_p)
    a, b = _turns(cached, _prompts(), params), _turns(fresh, _prompts(), params)
    for ga, gb in zip(a, b):
        assert [g.ids for g in ga] == [g.ids for g in gb]
        for x, y in zip(ga, gb):
            assert x.logp == pytest.approx(y.logp, abs=1e-4)
    assert len(cached.store) == 4 and len(fresh.store) == 0


def test_prefix_cache_prefills_only_new_tokens(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompt = _prompts(1)[0]
    (g,) = policy.generate([prompt], SamplingParams(8, 0.0))
    nxt = prompt + list(g.ids) + [7, 8, 9]
    with _fed_tokens(policy.model) as fed:
        (g2,) = policy.generate([nxt], SamplingParams(8, 0.0))
    # the last generated token and the 3 observation tokens, then one token per decode step but the last
    assert fed[0] == 4 + len(g2.ids) - 1


def test_prompts_that_begin_like_a_cached_row_reuse_the_common_prefix(tiny):
    """window:k-style turns: a fixed head (system prompt, task), then a different tail each turn."""
    model, tok = tiny
    head = _prompts(1, seed=5)[0][:40]
    cached, fresh = HFPolicy(model, tok), HFPolicy(model, tok, prefix_cache=False)
    for turn in range(3):
        prompts = [head + [100 + turn, 200 + row] * (turn + 2) for row in range(3)]
        with _fed_tokens(model) as fed:
            a = cached.generate(prompts, SamplingParams(6, 0.0))
        b = fresh.generate(prompts, SamplingParams(6, 0.0))
        assert [g.ids for g in a] == [g.ids for g in b]
        for x, y in zip(a, b):
            assert x.logp == pytest.approx(y.logp, abs=1e-4)
        tails = max(len(p) for p in prompts) - len(head) if turn else max(len(p) for p in prompts)
        decode = sum(len(g.ids) - 1 for g in a)  # one token fed per decode step and live row
        assert fed[0] <= len(prompts) * tails + decode  # turns after the first prefill only their tails


def test_identical_prompts_are_prefilled_once(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompt = _prompts(1)[0]
    with _fed_tokens(policy.model) as fed:
        gens = policy.generate([prompt] * 8, SamplingParams(1, 1.0, seed=3))
    assert fed[0] == len(prompt) and len(gens) == 8


def test_changed_weights_drop_the_cache(tiny):
    model, tok = tiny
    model = type(model)(model.config)  # a private copy: this test changes its weights
    model.load_state_dict(tiny[0].state_dict())
    cached = HFPolicy(model, tok)
    prompts = _prompts()
    gens = cached.generate(prompts, SamplingParams(8, 0.0))
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)  # an in-place update, as an optimizer step does
    nxt = [p + list(g.ids) + [7] for p, g in zip(prompts, gens)]
    with _fed_tokens(model) as fed:
        a = cached.generate(nxt, SamplingParams(8, 0.0))
    assert fed[0] >= sum(len(p) for p in nxt)  # everything prefilled again
    b = HFPolicy(model, tok, prefix_cache=False).generate(nxt, SamplingParams(8, 0.0))
    assert [g.ids for g in a] == [g.ids for g in b]


def test_own_decode_matches_hf_generate_greedy(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompts = _prompts(6, seed=1)
    own = policy.generate(prompts, SamplingParams(12, 0.0))
    ref = policy._hf_generate(prompts, SamplingParams(12, 0.0))
    assert [g.ids for g in own] == [g.ids for g in ref]
    assert [g.stopped for g in own] == [g.stopped for g in ref]
    for x, y in zip(own, ref):
        assert x.logp == pytest.approx(y.logp, abs=1e-4)


def test_on_step_reports_every_token_with_its_raw_logits_on_both_paths(tiny):
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompts = _prompts(3, seed=2)

    def record(run):
        steps: dict[int, list[tuple[int, torch.Tensor]]] = {i: [] for i in range(len(prompts))}

        def on_step(alive, toks, logits):
            for i, t, row in zip(alive, toks.tolist(), logits):
                steps[i].append((t, row.clone()))

        return run(prompts, SamplingParams(10, 0.0), on_step), steps

    for gens, steps in (record(policy.generate), record(policy._hf_generate)):
        for i, g in enumerate(gens):
            assert [t for t, _ in steps[i]] == list(g.ids)  # each row's tokens, in order, nothing after EOS
            logp = [torch.log_softmax(row, -1)[t].item() for t, row in steps[i]]
            assert logp == pytest.approx(list(g.logp), abs=1e-4)  # greedy: logp under the raw logits


@pytest.mark.parametrize("q_len", [1, 5])
def test_grouped_attention_matches_repeated_heads(q_len):
    """Decode (one query) and prefill (a causal tail over a left-padded cache), vs each head alone."""
    torch.manual_seed(0)
    b, h, h_kv, k_len, d = 3, 8, 2, 11, 16

    class Module:
        num_key_value_groups = h // h_kv

    q = torch.randn(b, h, q_len, d)  # (B, H, S, d)
    k, v = torch.randn(b, h_kv, k_len, d), torch.randn(b, h_kv, k_len, d)  # (B, Hkv, K, d)
    pad = torch.ones(b, k_len, dtype=torch.long)
    pad[0, :4] = 0  # row 0 left-padded
    mask = rollout_mask(b, q_len, k_len, q_offset=k_len - q_len, attention_mask=pad)  # (B, 1, S, K) additive
    assert mask.dtype == torch.float32 and mask.shape == (b, 1, q_len, k_len)
    out, _ = grouped_attention(Module(), q, k, v, mask, scaling=d ** -0.5)  # (B, S, H, d)
    for i in range(b):  # reference: every head on its own, its kv head = head // groups
        for head in range(h):
            for t in range(q_len):
                keep = pad[i].bool() & (torch.arange(k_len) <= k_len - q_len + t)  # padding and causality
                kk, vv = k[i, head // Module.num_key_value_groups, keep], v[i, head // Module.num_key_value_groups, keep]
                att = torch.softmax(q[i, head, t] @ kk.T / d ** 0.5, dim=-1)  # (K,)
                torch.testing.assert_close(out[i, t, head], att @ vv, atol=1e-5, rtol=1e-5)


def test_rollout_mask_decode_step():
    pad = torch.tensor([[0, 1, 1], [1, 1, 1]])
    mask = rollout_mask(2, 1, 3, q_offset=2, attention_mask=pad)  # (2, 1, 1, 3)
    assert mask[0, 0, 0, 0] == torch.finfo(torch.float32).min and (mask[0, 0, 0, 1:] == 0).all()
    assert (mask[1] == 0).all()
    assert rollout_mask(2, 1, 3, q_offset=2, attention_mask=torch.ones(2, 3)) is None  # no padding: no mask


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.999])
def test_nucleus_matches_transformers_top_p(top_p):
    torch.manual_seed(1)
    z = torch.randn(5, 50) * 3
    ref = TopPLogitsWarper(top_p)(None, z.clone())
    assert torch.equal(nucleus(z, top_p), ref)


def test_sample_reports_logp_of_the_sampled_distribution():
    torch.manual_seed(2)
    logits = torch.randn(4, 30)
    tok, logp = sample(logits, 0.7, 0.8, torch.Generator().manual_seed(0))
    expect = F.log_softmax(nucleus(logits / 0.7, 0.8), dim=-1).gather(-1, tok[:, None]).squeeze(-1)
    torch.testing.assert_close(logp, expect)
    assert torch.isfinite(logp).all()  # sampled tokens are inside the nucleus
    g_tok, g_logp = sample(logits, 0.0, 1.0, torch.Generator())
    assert torch.equal(g_tok, logits.argmax(-1))
    torch.testing.assert_close(g_logp, F.log_softmax(logits, -1).max(-1).values)


def test_cached_and_new_prompts_in_one_batch(tiny):
    """Rows extending a cached turn, a brand-new prompt and a duplicate, prefilled together."""
    model, tok = tiny
    cached, fresh = HFPolicy(model, tok), HFPolicy(model, tok, prefix_cache=False)
    first = _prompts(3, seed=4)
    gens = cached.generate(first, SamplingParams(10, 0.0))
    nxt = [p + list(g.ids) + [11, 12] for p, g in zip(first, gens)] + [_prompts(1, seed=9)[0]] * 2
    a = cached.generate(nxt, SamplingParams(10, 1.0, 0.95, seed=1))
    b = fresh.generate(nxt, SamplingParams(10, 1.0, 0.95, seed=1))
    assert [g.ids for g in a] == [g.ids for g in b]
    for x, y in zip(a, b):
        assert x.logp == pytest.approx(y.logp, abs=1e-4)


def test_sample_draws_from_the_nucleus_distribution():
    """Frequencies of many draws match softmax(nucleus(logits / T)) (chi-square-free check: 4 sigma)."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]]).repeat(20000, 1)  # (n, V)
    tok, _ = sample(logits, 0.8, 0.9, torch.Generator().manual_seed(0))
    p = F.softmax(nucleus(logits[:1] / 0.8, 0.9), dim=-1)[0]  # (V,)
    freq = torch.bincount(tok, minlength=6).float() / len(tok)
    sigma = (p * (1 - p) / len(tok)).sqrt()
    assert (freq - p).abs().le(4 * sigma + 1e-9).all(), (freq, p)
    assert freq[p == 0].sum() == 0  # nothing outside the nucleus


def test_kept_hidden_states_are_the_states_that_predict_each_token(tiny):
    """Over three cached turns with duplicate prompts: each token's kept state equals a full forward's
    state at the position before it, and keeping them changes no sampled token."""
    from resrl_agents.models.hooks import capture_hidden

    model, tok = tiny
    prompts = _prompts(3, seed=4)
    prompts = [prompts[0], prompts[0], prompts[1], prompts[2]]  # a group's identical prompts
    params = SamplingParams(12, 1.0, 1.0)
    plain = _turns(HFPolicy(model, tok), prompts, params)
    kept = _turns(HFPolicy(model, tok, hidden_layer=-2), prompts, params)
    assert [[g.ids for g in t] for t in plain] == [[g.ids for g in t] for t in kept]
    assert all(g.hidden is None for t in plain for g in t)
    seqs = [list(p) for p in prompts]
    for turn in kept:
        for i, g in enumerate(turn):
            start = len(seqs[i])
            seqs[i] += list(g.ids)
            with torch.no_grad(), capture_hidden(model, -2) as got:
                model(input_ids=torch.tensor([seqs[i]]))
            want = got[0][0, start - 1:start - 1 + len(g.ids)]  # (n, H): position t-1 predicts token t
            assert g.hidden.shape == want.shape
            torch.testing.assert_close(g.hidden, want, atol=1e-4, rtol=1e-4)
            seqs[i] += [7, 8, 9]
