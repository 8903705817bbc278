"""Cost of the ResRL weighting alone, and where it goes.

Hidden states are random (``--groups`` groups of ``--tokens`` policy tokens, or with ``--spread s``
between (1 - s)·tokens and tokens, hidden size ``--hidden``, half of each group's tokens positive),
on ``--device``. Prints the median time per group over ``--repeats`` passes of
``resrl_group_weights``, then torch.profiler's top operators by self time of one pass, to tell the
SVD's decompositions from the small per-group operations.

``--batched``: the weighting of all groups at once (``resrl_groups_weights``, their exact SVDs in
one call) against the per-group loop, interleaved in one run: both times per group and their
ratio, then the profile of one batched pass.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from resrl_agents.trainers.resrl_batch import resrl_groups_weights
from resrl_agents.trainers.subspace import exact_svd_pays


def one_pass(groups, device, args, batch: bool) -> None:
    seeds = {g: g for g in groups}
    resrl_groups_weights(groups, seeds, batch=batch, rank=args.rank, max_pos_tokens=args.max_pos, niter=args.niter)
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(groups, device, args, modes: list[bool]) -> dict[bool, float]:
    """Median seconds per group of each mode (``batch`` flag), the modes interleaved per repeat."""
    for batch in modes:  # warm-up (kernels, cuSOLVER handles)
        one_pass(groups, device, args, batch)
    times = {batch: [] for batch in modes}
    for _ in range(args.repeats):
        for batch in modes:
            tic = time.perf_counter()
            one_pass(groups, device, args, batch)
            times[batch].append(time.perf_counter() - tic)
    return {batch: statistics.median(t) / len(groups) for batch, t in times.items()}


def make_groups(args, device) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    groups = {}
    for i in range(args.groups):
        n = args.tokens - int(torch.randint(0, int(args.spread * args.tokens) + 1, (1,), generator=g))
        h = torch.randn(n, args.hidden, generator=g).to(device, torch.bfloat16)
        pos = (torch.arange(n) % 2 == 0).to(device)
        groups[i] = (h, pos, ~pos)
    return groups


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--spread", type=float, default=0.0, help="group sizes vary down to (1 - spread)·tokens")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--max-pos", type=int, default=4096)
    ap.add_argument("--niter", type=int, default=4, help="power iterations of the randomized SVD")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batched", action="store_true", help="also time all groups at once, against the loop")
    args = ap.parse_args()
    device = torch.device(args.device)
    groups = make_groups(args, device)
    N = [h.shape[0] for h, _, _ in groups.values()]
    M = [min(int(pos.sum()), args.max_pos) for _, pos, _ in groups.values()]
    exact = sum(exact_svd_pays(m, args.hidden, min(args.rank, m - 1, args.hidden), args.niter) for m in M)
    print(f"device {device}, {args.groups} groups x {min(N)}..{max(N)} tokens, H={args.hidden}, "
          f"rank {args.rank}: {exact} of {args.groups} groups take the exact SVD")
    t = timed(groups, device, args, [False, True] if args.batched else [False])
    print(f"per group, looped: {t[False] * 1e3:.2f} ms (median of {args.repeats})")
    if args.batched:
        print(f"per group, batched: {t[True] * 1e3:.2f} ms; batched/looped: {t[True] / t[False]:.2f}")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        one_pass(groups, device, args, args.batched)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=40))
    if device.type == "cuda":
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


if __name__ == "__main__":
    main()
