"""A group's shared prompt run once in the training forwards (``trainer.share_prefix``): the same
loss, gradients, old log-probs and ResRL weights as running every row in full, with and without
padding, on the tiny model (grouped-query attention, 4 heads over 2 key/value heads) and a
multi-head variant of it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resrl_agents.config.schema import AlgoConfig
from resrl_agents.models import load_policy
from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.distributed import LocalEngine
from resrl_agents.trainers.forward import ResRLSettings, forward_chunks, score_batch, shared_prefix_len
from resrl_agents.trainers.update import ppo_update

SETTINGS = ResRLSettings.from_algo(AlgoConfig(resrl=True, rank=8, max_pos_tokens=64, hidden_position="predicting"))


@pytest.fixture(scope="module", params=["gqa", "mha"])
def model(request, tiny, tiny_cfg):
    if request.param == "gqa":
        m = tiny[0]
        assert m.config.num_key_value_heads < m.config.num_attention_heads
        return m
    m, _ = load_policy(dataclasses.replace(tiny_cfg, num_kv_heads=tiny_cfg.num_heads))
    assert m.config.num_key_value_heads == m.config.num_attention_heads
    return m


def group_batch(padded: bool, n_groups=2, G=4, P=11, T=26, seed=0) -> Batch:
    """Groups of G rows: a prompt of P tokens shared inside the group, then each row's own tokens
    (policy tokens from P on); rows of different lengths when ``padded``."""
    g = torch.Generator().manual_seed(seed)
    B = n_groups * G
    prompts = torch.randint(10, 1000, (n_groups, P), generator=g).repeat_interleave(G, dim=0)  # (B, P)
    ids = torch.cat([prompts, torch.randint(10, 1000, (B, T - P), generator=g)], dim=1)  # (B, T)
    lens = torch.randint(P + 2, T + 1, (B,), generator=g) if padded else torch.full((B,), T)
    attn = (torch.arange(T)[None] < lens[:, None]).long()
    loss_mask = ((torch.arange(T)[None] >= P) & attn.bool()).float()
    seq_adv = torch.tensor([1.0, -1.0, -0.5, 0.5] * (B // 4))
    return Batch(input_ids=ids * attn, attention_mask=attn, loss_mask=loss_mask, logp_sample=torch.zeros(B, T),
                 reward=(seq_adv > 0).float(), seq_adv=seq_adv, group_id=torch.arange(n_groups).repeat_interleave(G),
                 response_len=loss_mask.sum(1).long(), success=seq_adv > 0)


def test_shared_prefix_len_stops_before_the_first_difference_or_policy_token():
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 1, 2]])
    no_policy = torch.zeros(2, 5)
    lens = torch.tensor([5, 5])
    assert shared_prefix_len(ids, no_policy, lens) == 2  # 3 shared; the 3rd predicts a differing token
    policy = no_policy.clone()
    policy[1, 2:] = 1  # row 1's policy tokens start at 2: only token 0 can run once
    assert shared_prefix_len(ids, policy, lens) == 1
    assert shared_prefix_len(ids[:1], no_policy[:1], lens[:1]) == 0  # one row: nothing to share
    same = torch.tensor([[5, 6, 7, 0], [5, 6, 7, 8]])
    assert shared_prefix_len(same, torch.zeros(2, 4), torch.tensor([3, 4])) == 2  # the short row ends at 3


def test_chunks_by_group_hold_one_group_each():
    lengths, gid = torch.tensor([3, 9, 5, 7, 2, 8]), torch.tensor([4, 4, 4, 1, 1, 1])
    chunks = [c.tolist() for c in forward_chunks(lengths, gid, size=2, by_group=True)]
    assert chunks == [[1, 2], [0], [5, 3], [4]]  # group 4 first (first seen), longest rows first
    assert sorted(sum(chunks, [])) == list(range(6))


def update_grads(model, batch: Batch, share: bool, micro: int) -> tuple[dict, list[torch.Tensor]]:
    """Metrics and the accumulated gradient of one optimizer step (read just before it)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays as it is
    grads, fed = [], [0]
    opt.register_step_pre_hook(lambda *_: grads.append([p.grad.clone() for p in model.parameters()]))
    count = model.get_decoder().register_forward_pre_hook(
        lambda _m, _a, kw: fed.__setitem__(0, fed[0] + kw["input_ids"].numel()), with_kwargs=True)
    algo = AlgoConfig(entropy_coef=0.01)
    m = ppo_update(LocalEngine(model, opt, grad_clip=1e9), batch, None, algo=algo, ppo_epochs=1,
                   mini_batch_groups=None, micro_batch_size=micro, temperature=0.9, max_len=32,
                   device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), share_prefix=share)
    count.remove()
    return m | {"fed_tokens": fed[0]}, grads[0]


@pytest.mark.parametrize("padded", [False, True])
def test_update_equals_the_unshared_update(model, padded):
    batch = group_batch(padded)
    batch.logp_old, _, batch.weight, *_ = score_batch(model, batch, micro_batch_size=8, temperature=0.9,
                                                     device=torch.device("cpu"), resrl=None, group_seed={})
    batch.logp_old = batch.logp_old + 0.05 * batch.loss_mask  # ratios != 1, some clipped
    batch.adv = batch.seq_adv[:, None] * batch.loss_mask
    m_full, g_full = update_grads(model, batch, share=False, micro=8)
    for micro in (8, 3):  # a group in one forward; split over two
        m_shared, g_shared = update_grads(model, batch, share=True, micro=micro)
        for key in ("loss/policy", "loss/entropy", "loss/clipfrac"):
            assert m_shared[key] == pytest.approx(m_full[key], rel=1e-5, abs=1e-7), key
        for a, b in zip(g_shared, g_full):
            assert float((a - b).norm()) <= 1e-5 * float(b.norm()) + 1e-9
        assert sum(float(g.norm()) for g in g_full) > 0
        assert m_shared["fed_tokens"] < m_full["fed_tokens"]  # the prompts ran once per forward


@pytest.mark.parametrize("padded", [False, True])
def test_scoring_equals_the_unshared_scoring(model, padded):
    batch = group_batch(padded, seed=3)
    seeds = {0: 5, 1: 6}
    kw = dict(micro_batch_size=8, temperature=1.0, device=torch.device("cpu"), resrl=SETTINGS, group_seed=seeds)
    logp, _, w, stats, *_ = score_batch(model, batch, share_prefix=False, **kw)
    logp_s, _, w_s, *_ = score_batch(model, batch, share_prefix=True, **kw)
    stats = list(stats.values())
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(logp_s[mask], logp[mask], atol=1e-5, rtol=1e-5)
    assert all(s.weighted for s in stats)
    torch.testing.assert_close(w_s, w, atol=1e-4, rtol=0)
