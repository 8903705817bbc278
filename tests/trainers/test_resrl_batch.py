"""Batched ResRL weighting (``resrl_groups_weights``): the same weights, in-span flags and stats
as the per-group function on tiny-model groups and random ones of every kind (no positives, no
negatives, too few, duplicated states, sampled, randomized-SVD), the exact SVDs of a step in ONE
call, seed-free exact path, and ``rollout_weights`` with ``algo.batch_groups``."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.overrides import TorchFunctionMode

from resrl_agents.config.schema import AlgoConfig
from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.forward import ResRLSettings, rollout_weights
from resrl_agents.trainers.resrl import resrl_group_weights
from resrl_agents.trainers.resrl_batch import resrl_groups_weights
from resrl_agents.trainers.subspace import positive_subspaces_exact
from test_resrl_groups import real_group, reference

torch.set_num_threads(1)
KW = dict(rank=8, max_pos_tokens=180)  # q = 16: the exact SVD pays while min(M, H) <= 160


class CountSVD(TorchFunctionMode):
    """The input shape of every ``torch.linalg.svd`` call made inside the block (``(B, M, H)``
    batched, ``(M, H)`` one group, ``(q, ·)`` the small one inside ``torch.svd_lowrank``)."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.linalg.svd:
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


def random_group(seed, n_pos, n_neg, H=32, n_other=3, dtype=torch.float32, dup=0):
    """Random states: ``n_pos`` positives (the first ``dup`` of them copies of one state, which
    negatives copy too), ``n_neg`` negatives, ``n_other`` tokens that are neither, interleaved."""
    g = torch.Generator().manual_seed(seed)
    N = n_pos + n_neg + n_other
    h = torch.randn(N, H, generator=g, dtype=dtype) + 0.5 * torch.randn(H, generator=g, dtype=dtype)
    if dup:
        h[:dup] = h[0]
        h[n_pos:n_pos + dup] = h[0]  # negatives on a positive's exact state: in span
    perm = torch.randperm(N, generator=g)
    pos = torch.arange(N) < n_pos
    neg = (torch.arange(N) >= n_pos) & (torch.arange(N) < n_pos + n_neg)
    return h[perm], pos[perm], neg[perm]


def mixed_groups():
    """Group id -> (h, pos, neg): exact-path groups of different M (below and above H), duplicated
    states, one sampled down to m = 180 positives, one on the randomized path (M = 170, H = 200),
    and the three fallbacks."""
    return {
        10: random_group(0, 12, 20),
        11: random_group(1, 40, 9),  # M = 40 > H = 32
        12: random_group(2, 25, 30, dup=6),
        13: random_group(3, 5, 3),  # M = 5: k = 4
        14: random_group(4, 200, 30),  # sampled: M = m = 180 > H
        15: random_group(5, 170, 40, H=200),  # min(M, H) = 170 > 160: randomized SVD, per group
        16: random_group(6, 0, 10),  # no positives
        17: random_group(7, 10, 0),  # no negatives
        18: random_group(8, 3, 10),  # 3 < min_pos_tokens
    }


def assert_same(batched, looped, atol=1e-5):
    """Weights and residuals to ``atol``; in-span flags and every count or flag of the stats identical."""
    assert batched.keys() == looped.keys()
    for g in looped:
        (wb, sb), (wl, sl) = batched[g], looped[g]
        torch.testing.assert_close(wb, wl, rtol=0, atol=atol, msg=f"group {g}")
        assert (sb.weighted, sb.reason, sb.rank, sb.degenerate, sb.n_neg, sb.n_in_span) == \
               (sl.weighted, sl.reason, sl.rank, sl.degenerate, sl.n_neg, sl.n_in_span), g
        if sl.weighted:
            assert torch.equal(sb.in_span, sl.in_span), g
            torch.testing.assert_close(sb.residual, sl.residual, rtol=0, atol=atol, equal_nan=True)


@pytest.mark.parametrize("gate", ["off_span", "paper"])
def test_batched_equals_per_group_on_mixed_groups(gate):
    groups = mixed_groups()
    seeds = {g: 100 + g for g in groups}
    looped = {g: resrl_group_weights(*x, seed=seeds[g], gate=gate, **KW) for g, x in groups.items()}
    with CountSVD() as svd:
        batched = resrl_groups_weights(groups, seeds, gate=gate, **KW)
    assert_same(batched, looped)
    # the five exact-path groups (H = 32, float32, M up to 180) in one call; then the randomized
    # group's own small SVD inside torch.svd_lowrank (q = 16 rows)
    assert svd.shapes == [(5, 180, 32), (16, 170)]
    reasons = {g: s.reason for g, (_, s) in batched.items() if not s.weighted}
    assert reasons == {16: "no_pos", 17: "no_neg", 18: "few_pos_tokens"}
    if gate == "off_span":  # the six negatives on a duplicated positive's exact state
        assert batched[12][1].n_in_span >= 6


def test_without_batch_it_is_the_per_group_loop_exactly():
    groups = mixed_groups()
    seeds = {g: g for g in groups}
    with CountSVD() as svd:
        got = resrl_groups_weights(groups, seeds, batch=False, **KW)
    assert svd.shapes == [(12, 32), (40, 32), (25, 32), (5, 32), (180, 32), (16, 170)]
    for g, x in groups.items():
        assert torch.equal(got[g][0], resrl_group_weights(*x, seed=g, **KW)[0])


def test_groups_of_other_dtypes_or_sizes_get_their_own_call():
    groups = {0: random_group(0, 12, 20), 1: random_group(1, 14, 20, dtype=torch.float64),
              2: random_group(2, 10, 20, H=24), 3: random_group(3, 9, 20)}
    seeds = dict.fromkeys(groups, 0)
    with CountSVD() as svd:
        batched = resrl_groups_weights(groups, seeds, **KW)
    assert svd.shapes == [(2, 12, 32), (1, 14, 32), (1, 10, 24)]  # float32 H=32 together; float64, H=24
    assert batched[1][0].dtype == torch.float64
    assert_same(batched, {g: resrl_group_weights(*x, seed=0, **KW) for g, x in groups.items()})


@pytest.mark.parametrize("position", ["predicting", "own"])
def test_tiny_model_groups_match_the_float64_reference_batched(tiny, position):
    """Groups of the tiny model (shared prefixes, duplicated positives) of different sizes, batched
    in float64: the independent reference's weights, ranks and in-span counts."""
    model, _ = tiny
    made = [real_group(model), real_group(model, n_dup=2, diverge=3, long_neg=12),
            real_group(model, diverge=7, long_neg=4)]
    groups = {g: (h[position], pos, neg) for g, (h, pos, neg, _) in enumerate(made)}
    with CountSVD() as svd:
        batched = resrl_groups_weights(groups, dict.fromkeys(groups, 0), rank=64)
    assert len(svd.shapes) == 1 and svd.shapes[0][0] == 3
    for g, (h, pos, neg) in groups.items():
        w, s = batched[g]
        ref, span, k, degenerate = reference(h, pos, neg, rank=64)
        torch.testing.assert_close(w, ref, rtol=0, atol=1e-8)
        assert s.rank == k and s.degenerate == degenerate and s.n_in_span == sum(span.values())
    # float32, as training runs it: the per-group function's results
    f32 = {g: (h.float(), pos, neg) for g, (h, pos, neg) in groups.items()}
    assert_same(resrl_groups_weights(f32, dict.fromkeys(f32, 0), rank=64),
                {g: resrl_group_weights(*x, rank=64, seed=0) for g, x in f32.items()})


def test_exact_path_does_not_depend_on_the_seeds():
    groups = {g: x for g, x in mixed_groups().items() if g in (10, 11, 12, 13)}  # exact, not sampled
    a = resrl_groups_weights(groups, dict.fromkeys(groups, 0), **KW)
    b = resrl_groups_weights(groups, {g: 1000 + 7 * g for g in groups}, **KW)
    assert all(torch.equal(a[g][0], b[g][0]) for g in groups)


def test_padded_svd_hand_worked():
    # group 0: rows 3·e1 and 1·e2 -> σ = (3, 1); rank_tol 0.5 keeps σ >= 1.5: only e1.
    # group 1: one row 2·e3 (padded with a zero row) -> σ = (2, 0): keeps e3 (k = 1).
    # group 2: rows 3·e1 and 2·e2 with k = 1: σ_2 = 2 passes the tolerance, k stops it at e1.
    X0 = torch.tensor([[3.0, 0, 0], [0, 1, 0]])
    X1 = torch.tensor([[0, 0, 2.0]])
    X2 = torch.tensor([[3.0, 0, 0], [0, 2, 0]])
    V0, V1, V2 = positive_subspaces_exact([X0, X1, X2], [2, 1, 1], rank_tol=0.5)
    assert V0.shape == V1.shape == V2.shape == (3, 1)
    torch.testing.assert_close(V0.abs().squeeze(1), torch.tensor([1.0, 0, 0]))
    torch.testing.assert_close(V1.abs().squeeze(1), torch.tensor([0, 0, 1.0]))
    torch.testing.assert_close(V2.abs().squeeze(1), torch.tensor([1.0, 0, 0]))


def test_errors_name_the_group_and_the_key():
    groups = mixed_groups()
    h, pos, neg = groups[12]
    bad = h.clone()
    bad[neg.nonzero()[0, 0], 0] = float("inf")
    groups[12] = (bad, pos, neg)
    with pytest.raises(FloatingPointError, match="ResRL weights of group 12: non-finite hidden states in 1 of"):
        resrl_groups_weights(groups, dict.fromkeys(groups, 0))
    with pytest.raises(TypeError, match="rnak"):
        resrl_groups_weights({}, {}, rnak=8)


def rollout_batch(groups: dict) -> tuple[Batch, torch.Tensor]:
    """A batch whose policy tokens carry ``groups``' states: one row per (group, sign) of each
    group's tokens, in ``policy_tokens`` order, the hidden ``(N, H)`` the rollout would keep."""
    rows, hidden, gid, success = [], [], [], []
    for g, (h, pos, neg) in groups.items():
        for flag in (pos, neg):
            rows.append(h[flag])
            gid.append(g)
            success.append(flag is pos)
    T = 2 + max(r.shape[0] for r in rows)
    loss_mask = torch.zeros(len(rows), T)
    for i, r in enumerate(rows):
        loss_mask[i, 2:2 + r.shape[0]] = 1
        hidden.append(r)
    B = len(rows)
    batch = Batch(input_ids=torch.zeros(B, T, dtype=torch.long), attention_mask=(loss_mask > 0).long() | 1,
                  loss_mask=loss_mask, logp_sample=torch.zeros(B, T), reward=torch.tensor(success).float(),
                  seq_adv=torch.tensor(success).float() * 2 - 1, group_id=torch.tensor(gid),
                  response_len=loss_mask.sum(1).long(), success=torch.tensor(success))
    return batch, torch.cat(hidden)


def test_rollout_weights_batched_equals_per_group():
    groups = {1: random_group(20, 12, 20, H=200), 2: random_group(21, 40, 9, H=200),
              3: random_group(22, 25, 30, H=200, dup=6), 4: random_group(23, 60, 30, H=200),
              5: random_group(5, 170, 40, H=200)}  # randomized SVD
    batch, hidden = rollout_batch(groups)
    seeds = {g: g for g in groups}
    base = ResRLSettings.from_algo(AlgoConfig(resrl=True, batch_groups="off", **KW))
    cpu = torch.device("cpu")
    assert not base.batched(cpu) and not dataclasses.replace(base, batch_groups="auto").batched(cpu)
    assert dataclasses.replace(base, batch_groups="auto").batched(torch.device("cuda"))
    off = rollout_weights(batch, hidden, base, seeds, cpu)
    with CountSVD() as svd:
        on = rollout_weights(batch, hidden, dataclasses.replace(base, batch_groups="on"), seeds, cpu)
    assert svd.shapes == [(4, 60, 200), (16, 170)]  # four exact groups, then the randomized one
    torch.testing.assert_close(on.weight, off.weight, rtol=0, atol=1e-5)
    assert torch.equal(on.in_span, off.in_span) and all(s.weighted for s in on.stats.values())
    assert {g: s.rank for g, s in on.stats.items()} == {g: s.rank for g, s in off.stats.items()}


def test_bad_batch_groups_names_the_key():
    with pytest.raises(ValueError, match="algo.batch_groups must be auto, on or off"):
        ResRLSettings.from_algo(AlgoConfig(resrl=True, batch_groups="yes"))
