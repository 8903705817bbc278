"""Pass@k / Avg@n against exact enumeration of k-subsets, and summaries of hand-built episodes."""

from __future__ import annotations

import itertools
import math

import pytest

from resrl_agents.eval.metrics import avg_at_n, ks_for, pass_at_k, pass_at_k_curve, summarize
from resrl_agents.rollout.types import Trajectory, Turn


def enumerated_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (c successes) that hold at least one success."""
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_subset_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            exact = enumerated_pass_at_k(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
            assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_hand_worked():
    # n=4, c=1, k=2: C(4,2)=6 pairs, the 3 pairs holding the success -> 3/6 = 0.5
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # pass@1 is c/n; pass@n is 1 as soon as one sample succeeded
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16)
    assert pass_at_k(16, 1, 16) == 1.0 and pass_at_k(16, 0, 16) == 0.0


def test_large_n_is_stable():
    # n = 128 (the paper's Pass@128): binomials ~1e37, the product form stays exact enough
    assert pass_at_k(128, 3, 64) == pytest.approx(1 - math.comb(125, 64) / math.comb(128, 64), rel=1e-12)


def test_invalid_arguments():
    for n, c, k in [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_ks_and_curve_and_avg():
    assert ks_for(1) == [1] and ks_for(16) == [1, 2, 4, 8, 16] and ks_for(6) == [1, 2, 4, 6]
    counts = [0, 1, 4]  # three tasks, n = 4
    curve = pass_at_k_curve(counts, 4)
    assert list(curve) == [1, 2, 4]
    # pass@1 = mean(0/4, 1/4, 4/4) = 5/12; pass@2 = mean(0, 0.5, 1) = 0.5; pass@4 = mean(0, 1, 1) = 2/3
    assert curve[1] == pytest.approx(5 / 12) and curve[2] == pytest.approx(0.5) and curve[4] == pytest.approx(2 / 3)
    assert avg_at_n(counts, 4) == pytest.approx(curve[1])  # Avg@n = mean of n Pass@1 estimates


def _traj(group: int, won: bool, family: str, turns: int = 1, reward: float | None = None,
          truncated: bool = False, invalid: bool = False) -> Trajectory:
    t = tuple(Turn((1, 2), (3, 4, 5), (0.0, 0.0, 0.0), invalid=invalid) for _ in range(turns))
    return Trajectory(group_id=group, task_id=f"t{group}", seed=100 + group, turns=t,
                      reward=float(won) if reward is None else reward, terminated=not truncated,
                      truncated=truncated, family=family, won=won)


def test_summarize_counts_families_and_lengths():
    trajs = ([_traj(0, w, "pick") for w in (True, False)]  # task 0: c = 1 of 2
             + [_traj(1, w, "pick", turns=3) for w in (True, True)]  # task 1: c = 2
             + [_traj(2, False, "clean", turns=2, reward=-0.5, truncated=True, invalid=True) for _ in range(2)])
    s = summarize(trajs, n=2)
    assert (s.num_tasks, s.num_episodes) == (3, 6)
    assert s.avg_at_n == pytest.approx((0.5 + 1 + 0) / 3)
    assert s.pass_at_k[2] == pytest.approx((1 + 1 + 0) / 3)
    assert s.success == pytest.approx(3 / 6)
    assert s.score == pytest.approx((1 + 0 + 1 + 1 - 0.5 - 0.5) / 6)
    assert s.episode_len == pytest.approx((1 + 1 + 3 + 3 + 2 + 2) / 6)
    assert s.response_len == pytest.approx(3 * 12 / 6)
    assert s.invalid_rate == pytest.approx(4 / 12) and s.truncated == pytest.approx(2 / 6)
    assert set(s.families) == {"pick", "clean"}
    assert s.families["pick"].success == pytest.approx(3 / 4) and s.families["pick"].tasks == 2
    assert s.families["clean"].score == pytest.approx(-0.5) and s.families["clean"].pass_at_k[1] == 0.0
    assert [(r.task_id, r.successes, r.n) for r in s.tasks] == [("t0", 1, 2), ("t1", 2, 2), ("t2", 0, 2)]


def test_seeds_of_one_task_pool_and_cut_replies_count_as_truncated():
    """Two seeds that drew task t0 (2 + 2 samples) are one task with c = 3 of 4; an episode whose
    reply hit max_new_tokens is truncated though its env ended it."""
    cut = (Turn((1,), (2, 3), (0.0, 0.0), clipped=True),)
    trajs = [_traj(0, True, "pick"), _traj(0, False, "pick"), _traj(1, True, "pick"), _traj(1, True, "pick")]
    trajs = [Trajectory(group_id=t.group_id, task_id="t0", seed=t.seed, turns=cut if i == 0 else t.turns,
                        reward=t.reward, terminated=True, truncated=False, family=t.family, won=t.won)
             for i, t in enumerate(trajs)]
    s = summarize(trajs, n=2)
    assert s.num_tasks == 1 and [(t.n, t.successes) for t in s.tasks] == [(4, 3)]
    assert s.avg_at_n == pytest.approx(3 / 4) and s.pass_at_k[2] == pytest.approx(1.0)  # C(1,2)=0 -> 1 - 0
    assert s.truncated == pytest.approx(1 / 4) and s.clipped == pytest.approx(1 / 4)
