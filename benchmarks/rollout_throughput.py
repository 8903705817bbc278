"""Batched multi-env rollout vs one env at a time, in the same run, on the real agent loop.

Both modes run the same episodes (same tasks, seeds and sampling settings) with the bundled
tiny model (``--model smollm2`` for SmolLM2-135M-Instruct):
``batched`` steps all G x B episodes together (one ``generate`` call per turn for every live
episode; ``--env-workers W`` puts its envs in W processes that step in parallel); ``sequential``
runs them one episode at a time. Generated tokens per second of wall time are compared: both
modes run ``--repeats`` times, interleaved (the same episodes every time), and their median runs
are compared, so that one noisy moment on a shared machine does not decide the ratio. The
framework overhead of the batched run is the wall time spent outside ``env.step``/``env.reset``
and the model's ``generate`` (rendering, tokenizing, parsing, bookkeeping), as a fraction of the
total. Before either timed run every env is reset once to its task (``warm-up``, printed):
loading a game (parsing its PDDL and grammar, ~0.1-0.8 s on ALFWorld) is a one-time cost per env
and game, which the batched run would otherwise pay for both modes. ``--history`` picks the
layout (``full``, the training default, or ``window:k``).

Ends with
    batched/sequential tokens-per-second ratio: X.XX     (target >= 5)
    ALFWorld framework overhead fraction: X.XX            (target <= 0.10; with --env alfworld)
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch

from resrl_agents.config.schema import ModelConfig
from resrl_agents.models import load_policy
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.env_pool import EnvPool
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.trainers.recipe import make_envs, pick_device

ENVS = {"alfworld": "resrl_agents/ALFWorld-v0", "webshop": "resrl_agents/WebShop-v0"}


class TimedEnv(gym.Wrapper):
    """Accumulates wall time spent inside the wrapped env."""

    def __init__(self, env, clock: list[float]):
        super().__init__(env)
        self.clock = clock

    def reset(self, **kw):
        tic = time.perf_counter()
        try:
            return self.env.reset(**kw)
        finally:
            self.clock[0] += time.perf_counter() - tic

    def step(self, action):
        tic = time.perf_counter()
        try:
            return self.env.step(action)
        finally:
            self.clock[0] += time.perf_counter() - tic


class TimedEnvSet:
    """Accumulates wall time spent waiting for an EnvPool's resets and steps."""

    def __init__(self, pool, clock: list[float]):
        self.pool, self.clock, self.max_turns = pool, clock, pool.max_turns

    def __len__(self) -> int:
        return len(self.pool)

    def _timed(self, fn, items):
        tic = time.perf_counter()
        try:
            return fn(items)
        finally:
            self.clock[0] += time.perf_counter() - tic

    def reset_many(self, items):
        return self._timed(self.pool.reset_many, items)

    def step_many(self, items):
        return self._timed(self.pool.step_many, items)


class TimedPolicy:
    def __init__(self, policy, clock: list[float]):
        self.policy, self.clock = policy, clock

    def generate(self, prompts, params):
        tic = time.perf_counter()
        try:
            return self.policy.generate(prompts, params)
        finally:
            self.clock[0] += time.perf_counter() - tic


def run(envs, seeds, policy, renderer, args) -> tuple[float, int]:
    tic = time.perf_counter()
    trajs = rollout(envs, seeds, list(range(len(envs))), policy, renderer, history=args.history, max_new_tokens=args.max_new,
                    max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=0)
    return time.perf_counter() - tic, sum(t.response_length for t in trajs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="alfworld", choices=sorted(ENVS))
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=48)
    ap.add_argument("--max-turns", type=int, default=10)
    ap.add_argument("--model", default="tiny", choices=["tiny", "smollm2"])
    ap.add_argument("--history", default="full", help="rollout layout: full | window:k")
    ap.add_argument("--env-workers", type=int, default=0, help="batched mode: envs in this many processes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default, as training uses)")
    ap.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    ap.add_argument("--dtype", default="float32", help="model dtype: float32 | bfloat16")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of both modes; medians are compared")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, device: {pick_device(args.device)}")
    env_id, kw = ENVS[args.env], {"max_turns": args.max_turns}
    device = pick_device(args.device)
    model, tok = load_policy(ModelConfig(name=args.model, dtype=args.dtype), device=device)
    renderer = ChatRenderer(tok)
    env_clock, model_clock = [0.0], [0.0]
    n = args.groups * args.group_size
    envs = [TimedEnv(e, env_clock) for e in make_envs(env_id, kw, n)]
    policy = TimedPolicy(HFPolicy(model, tok, device), model_clock)
    seeds = [g for g in range(args.groups) for _ in range(args.group_size)]

    tic = time.perf_counter()
    for env, seed in zip(envs, seeds):
        env.reset(seed=seed)
    env_clock[0] = 0.0
    print(f"warm-up (one reset per env): {time.perf_counter() - tic:.1f}s")
    pool = EnvPool(env_id, kw, n, args.env_workers) if args.env_workers else None
    if pool:
        pool.reset_many([(i, seed, None) for i, seed in enumerate(seeds)])
    batched, sequential = [], []  # (wall s, tokens, env s, model s) per repeat, modes interleaved
    for r in range(args.repeats):
        env_clock[0] = model_clock[0] = 0.0
        wall, toks = run(TimedEnvSet(pool, env_clock) if pool else envs, seeds, policy, renderer, args)
        batched.append((wall, toks, env_clock[0], model_clock[0]))
        print(f"batched {r}: {n} episodes, {toks} tokens in {wall:.1f}s ({toks / wall:.0f} tok/s); "
              f"env {env_clock[0]:.1f}s, model {model_clock[0]:.1f}s")
        wall, toks = 0.0, 0
        for i in range(n):
            w, t = run(envs[i:i + 1], seeds[i:i + 1], policy, renderer, args)
            wall, toks = wall + w, toks + t
        sequential.append((wall, toks))
        print(f"sequential {r}: {n} episodes, {toks} tokens in {wall:.1f}s ({toks / wall:.0f} tok/s)")
    if pool:
        pool.close()
    wall_b, tok_b, env_b, model_b = statistics.median_low(batched)  # the same episodes every repeat
    wall_s, tok_s = statistics.median_low(sequential)
    overhead = (wall_b - env_b - model_b) / wall_b
    print(f"median of {args.repeats}: batched {tok_b / wall_b:.0f} tok/s, sequential {tok_s / wall_s:.0f} tok/s")
    print(f"batched/sequential tokens-per-second ratio: {(tok_b / wall_b) / (tok_s / wall_s):.2f}")
    label = "ALFWorld" if args.env == "alfworld" else args.env
    print(f"{label} framework overhead fraction: {overhead:.2f}")


if __name__ == "__main__":
    main()
