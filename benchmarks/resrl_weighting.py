"""Cost of the ResRL weighting alone (``resrl_group_weights`` per group), and where it goes.

Hidden states are random (``--groups`` groups of ``--tokens`` policy tokens, hidden size
``--hidden``, half of each group's tokens positive), on ``--device``. Prints the median time per
group over ``--repeats`` passes, then torch.profiler's top operators by self time of one pass,
to tell the randomized SVD's decompositions from the small per-group operations.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from resrl_agents.trainers.resrl import resrl_group_weights


def one_pass(groups, device, args) -> None:
    for seed, (h, pos, neg) in enumerate(groups):
        resrl_group_weights(h, pos, neg, rank=args.rank, max_pos_tokens=args.max_pos, seed=seed)
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--max-pos", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    groups = []
    for _ in range(args.groups):
        h = torch.randn(args.tokens, args.hidden, generator=g).to(device, torch.bfloat16)
        pos = (torch.arange(args.tokens) % 2 == 0).to(device)
        groups.append((h, pos, ~pos))
    one_pass(groups, device, args)  # warm-up (kernels, cuSOLVER handles)
    times = []
    for _ in range(args.repeats):
        tic = time.perf_counter()
        one_pass(groups, device, args)
        times.append(time.perf_counter() - tic)
    per_group = statistics.median(times) / args.groups
    print(f"device {device}, {args.groups} groups x {args.tokens} tokens, H={args.hidden}, rank {args.rank}: "
          f"{per_group * 1e3:.2f} ms per group (median of {args.repeats})")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        one_pass(groups, device, args)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=40))
    if device.type == "cuda":
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


if __name__ == "__main__":
    main()
