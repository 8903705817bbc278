"""ResRL's cost over GRPO on identical batches, measured in one run.

Rollouts are sampled once by the ResRL recipe (the tiny model on the math env, ``--max-new``
tokens each; its decode loop keeps the hidden state of every sampled token) and every group is
given a 50/50 split of rewards, so that every group is weighted: the worst case for ResRL. Then
GRPO and ResRL learn from the same trajectories (phases 2-4 of the training step: advantages, old
log-probs and ResRL weights, the PPO update), interleaved, alternating which goes first, for
``--repeats`` rounds. The rollout differs only by ResRL's hidden-state capture (ResRL's states
come from the decode forwards, so its cost is split between the rollout and the weighting): the
same rollouts (same seeds) are timed with and without it, interleaved. The step-time ratio is of
the sums of the medians, rollout plus phases 2-4; the two parts are printed too.

Peak memory: on CUDA, ``max_memory_allocated`` around each step in this process. On CPU torch
keeps no allocator statistics, so each algorithm learns the same saved batches in a fresh child
process that does no rollout; a thread samples its RSS every millisecond, and the growth of the
largest sample over the resident size just before the first step is compared.

Ends with
    ResRL/GRPO rollout-time ratio: X.XX     (the hidden-state capture)
    ResRL/GRPO learn-time ratio: X.XX       (phases 2-4: the weighting)
    ResRL/GRPO step-time ratio: X.XX        (rollout + phases 2-4; target <= 1.03)
    ResRL/GRPO peak-memory ratio: X.XX      (target <= 1.10)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import threading
import time

import psutil

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from resrl_agents.config.schema import register_configs
from resrl_agents.trainers.recipe import RLRecipe


def make_recipe(algo: str, args) -> RLRecipe:
    overrides = ["env=math", f"model={args.model}", f"algo={algo}", "trainer.progress=false", "trainer.tensorboard=false",
                 f"rollout.prompts_per_step={args.groups}", f"rollout.group_size={args.group_size}",
                 f"rollout.max_new_tokens={args.max_new}", f"trainer.micro_batch_size={args.micro}",
                 f"trainer.output_dir={args.out}/{algo}", "trainer.lr=1e-6", *args.overrides]
    with initialize_config_module("resrl_agents.config", version_base="1.3"):
        recipe = RLRecipe(OmegaConf.to_object(compose("train", overrides=overrides)))
    recipe.setup()
    return recipe


def fixed_batches(recipe: RLRecipe, n: int):
    """``n`` rollout batches from the real rollout path, rewards set 1,0,1,0,... inside each group."""
    out = []
    for step in range(n):
        trajs = recipe._rollout_round(step, 0)
        out.append([dataclasses.replace(t, reward=float(i % 2)) for i, t in enumerate(trajs)])
    return out


def rollout_times(recipes: dict[str, RLRecipe], n: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per rollout batch of each recipe, the same batches (same seeds), interleaved."""
    times = {name: [] for name in recipes}
    for r in range(repeats):
        for step in range(n):
            for name in (list(recipes) if r % 2 == 0 else list(recipes)[::-1]):
                tic = time.perf_counter()
                recipes[name]._rollout_round(step, 0)
                times[name].append(time.perf_counter() - tic)
    return times


def timed_learn(recipe: RLRecipe, trajs) -> tuple[float, int]:
    cuda = recipe.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    recipe.learn(trajs)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - tic, torch.cuda.max_memory_allocated() if cuda else 0


def child_peak_rss(args, algo: str, batches_file: str) -> int:
    """Peak-RSS growth (bytes) of ``algo`` learning the saved batches, in a fresh process."""
    cmd = [sys.executable, __file__, "--child", algo, "--batches-file", batches_file] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("child", "batches_file", "overrides") and v is not None] + args.overrides
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_growth"]


def run_child(args) -> None:
    recipe = make_recipe(args.child, args)
    batches = torch.load(args.batches_file, weights_only=False)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for trajs in batches:
        recipe.learn(trajs)
    done.set()
    sampler.join()
    print(json.dumps({"peak_growth": peak[0] - base}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/step_overhead")
    ap.add_argument("overrides", nargs="*", help="more Hydra overrides, e.g. model.dtype=bfloat16 model.hidden_size=1024")
    ap.add_argument("--child", default=None)
    ap.add_argument("--batches-file", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    register_configs()
    if args.child:
        return run_child(args)
    grpo, resrl = make_recipe("grpo", args), make_recipe("resrl", args)
    batches = fixed_batches(resrl, args.batches)
    roll = rollout_times({"grpo": grpo, "resrl": resrl}, args.batches, args.repeats)
    n_tok = sum(t.response_length for b in batches for t in b) / len(batches)
    print(f"{len(batches)} batches of {args.groups}x{args.group_size} trajectories, {n_tok:.0f} policy tokens each, "
          f"device {grpo.device}, {args.repeats} interleaved repeats")
    times = {"grpo": [], "resrl": []}
    peaks = {"grpo": 0, "resrl": 0}
    timed_learn(grpo, batches[0]), timed_learn(resrl, batches[0])  # warm-up
    for r in range(args.repeats):
        order = (("grpo", grpo), ("resrl", resrl)) if r % 2 == 0 else (("resrl", resrl), ("grpo", grpo))
        for trajs in batches:
            for name, recipe in order:
                dt, peak = timed_learn(recipe, trajs)
                times[name].append(dt)
                peaks[name] = max(peaks[name], peak)
    for name in times:
        print(f"{name}: median step {statistics.median(times[name]) * 1e3:.1f} ms over {len(times[name])} steps, "
              f"median rollout {statistics.median(roll[name]) * 1e3:.1f} ms")
    if grpo.device.type != "cuda":
        path = f"{args.out}/batches.pt"
        torch.save(batches, path)
        peaks = {name: child_peak_rss(args, name, path) for name in peaks}
        print(f"peak RSS growth (child processes): grpo {peaks['grpo'] / 2**20:.1f} MiB, resrl {peaks['resrl'] / 2**20:.1f} MiB")
    med = {name: (statistics.median(roll[name]), statistics.median(times[name])) for name in times}
    print(f"ResRL/GRPO rollout-time ratio: {med['resrl'][0] / med['grpo'][0]:.2f}")
    print(f"ResRL/GRPO learn-time ratio: {med['resrl'][1] / med['grpo'][1]:.2f}")
    print(f"ResRL/GRPO step-time ratio: {sum(med['resrl']) / sum(med['grpo']):.2f}")
    print(f"ResRL/GRPO peak-memory ratio: {peaks['resrl'] / max(peaks['grpo'], 1):.2f}")


if __name__ == "__main__":
    main()
