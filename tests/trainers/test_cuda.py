"""The GPU paths against the CPU ones: ResRL weights, the scoring pass, sampling log-probs and a
bf16 update on CUDA. Skipped without a GPU (CI has none); run on a lent GPU machine."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from resrl_agents.config.schema import AlgoConfig
from resrl_agents.rollout.policy import HFPolicy, SamplingParams
from resrl_agents.trainers.forward import causal_logits, score_batch
from resrl_agents.trainers.loss import token_logp
from resrl_agents.trainers.resrl import resrl_group_weights
from resrl_agents.trainers.resrl_batch import resrl_groups_weights
from resrl_agents.trainers.distributed import LocalEngine
from resrl_agents.trainers.update import ppo_update
from tests.trainers.test_forward import SETTINGS, _batch
from tests.trainers.test_resrl import gapped_group, ref_weights
from tests.trainers.test_resrl_batch import KW, assert_same, mixed_groups

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("seed", [0, 1])
def test_resrl_weights_on_cuda_match_the_reference(seed):
    h, pos, neg = gapped_group(seed)
    w, stats = resrl_group_weights(h.to(CUDA), pos.to(CUDA), neg.to(CUDA), rank=6, seed=seed)
    assert w.device.type == "cuda" and stats.rank == 6
    torch.testing.assert_close(w.cpu(), ref_weights(h, pos, neg, rank=6), rtol=0, atol=1e-8)
    # float32, as training runs it: close to the CPU's float32 result
    w32, _ = resrl_group_weights(h.float().to(CUDA), pos.to(CUDA), neg.to(CUDA), rank=6, seed=seed)
    w32_cpu, _ = resrl_group_weights(h.float(), pos, neg, rank=6, seed=seed)
    torch.testing.assert_close(w32.cpu(), w32_cpu, rtol=0, atol=1e-4)


def test_batched_weights_on_cuda_equal_the_per_group_ones():
    """All groups' exact SVDs in one call on CUDA (cuSOLVER's gesvdj per matrix inside it)."""
    groups = {g: tuple(x.to(CUDA) for x in group) for g, group in mixed_groups().items()}
    batched = resrl_groups_weights(groups, {g: g for g in groups}, **KW)
    assert all(w.device.type == "cuda" for w, _ in batched.values())
    assert_same(batched, {g: resrl_group_weights(*x, seed=g, **KW) for g, x in groups.items()})


def test_scoring_on_cuda_matches_cpu(tiny):
    # rank >= M - 1 makes the randomized SVD exact: with a low rank and no spectral gap (a random
    # model's hidden states) the subspace depends on the random test matrix, which CUDA's generator
    # draws differently from the CPU's for the same seed.
    model, tok = tiny
    batch = _batch(tok)
    seeds = {0: 11, 1: 12, 2: 13}
    exact = dataclasses.replace(SETTINGS, rank=64)
    cpu = score_batch(model, batch, micro_batch_size=4, temperature=1.0, device=torch.device("cpu"),
                      resrl=exact, group_seed=seeds)
    gpu_model = copy.deepcopy(model).to(CUDA)
    gpu = score_batch(gpu_model, batch, micro_batch_size=4, temperature=1.0, device=CUDA, resrl=exact, group_seed=seeds)
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(gpu[0].cpu()[mask], cpu[0][mask], rtol=0, atol=1e-3)  # old log-probs (TF32 matmuls)
    torch.testing.assert_close(gpu[2].cpu(), cpu[2], rtol=0, atol=1e-3)  # ResRL weights
    assert [s.weighted for s in gpu[3]] == [s.weighted for s in cpu[3]]


def test_sampling_log_probs_on_cuda_match_a_rescoring(tiny):
    model, tok = tiny
    gpu_model = copy.deepcopy(model).to(CUDA).eval()
    policy = HFPolicy(gpu_model, tok, CUDA)
    prompts = [tok.encode("Q: 12+7=? A:"), tok.encode("Q: 3+41=? A:")] * 4
    gens = policy.generate(prompts, SamplingParams(max_new_tokens=16, temperature=1.0, seed=3))
    assert all(len(g.ids) > 0 for g in gens)
    for p, g in zip(prompts, gens):
        ids = torch.tensor([list(p) + list(g.ids)])
        with torch.no_grad():
            logp = token_logp(causal_logits(model, ids), ids, 1.0)[0, len(p):]  # CPU float32
        torch.testing.assert_close(torch.tensor(g.logp), logp, rtol=0, atol=1e-3)


def test_bf16_update_on_cuda(tiny):
    model, tok = tiny
    gpu_model = copy.deepcopy(model).to(CUDA, torch.bfloat16)
    batch = _batch(tok)
    seeds = {0: 11, 1: 12, 2: 13}
    batch.logp_old, _, batch.weight, *_ = score_batch(gpu_model, batch, micro_batch_size=4, temperature=1.0, device=CUDA,
                                                     resrl=SETTINGS, group_seed=seeds)
    batch.adv = batch.seq_adv[:, None] * batch.weight.cpu() * batch.loss_mask
    batch.logp_old = batch.logp_old.cpu()
    before = [p.detach().clone() for p in gpu_model.parameters()]
    opt = torch.optim.AdamW(gpu_model.parameters(), lr=1e-3)
    m = ppo_update(LocalEngine(gpu_model, opt, grad_clip=1.0), batch, None, algo=AlgoConfig(), ppo_epochs=1,
                   mini_batch_groups=None, micro_batch_size=4, temperature=1.0, max_len=24, device=CUDA,
                   generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(torch.tensor(m["loss/policy"])) and m["loss/grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, gpu_model.parameters()))


def test_loading_on_cuda_turns_off_cudnn_attention(tiny_cfg):
    # cuDNN's SDPA builds a plan per shape; rollouts change shape every decode step
    from resrl_agents.models import load_policy

    load_policy(dataclasses.replace(tiny_cfg, dtype="bfloat16"), device="cuda")
    assert not torch.backends.cuda.cudnn_sdp_enabled()
