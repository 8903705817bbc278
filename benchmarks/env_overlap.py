"""How much of a batched rollout overlapping env steps with decoding could hide, measured.

The idea under test (issue 15, item 6): a row whose turn ended (it sampled EOS) has its env
stepped by a worker while the other rows still decode. That hides at most, per turn, the env
steps' time, and no more than the decode time left after the first row ends (the "tail"). This
runs the real agent loop on ALFWorld with the tiny model (rollout_throughput's ALFWorld setting)
and records per turn: the decode time, the time each row ended (the decode loop's ``on_step``),
and the env-step time, with in-process envs (one after another; each step timed) and with an
:class:`EnvPool` of ``--env-workers`` processes, interleaved for ``--repeats`` rounds.

Bounds, as fractions of the rollout's wall time (per rollout; the median over the rounds):
  ``ceiling``    sum over turns of min(env steps, tail): nothing can hide more.
  ``one worker`` (in-process envs) the env time hidden if one worker thread, on a free core,
                 stepped each row's env as soon as the row ended, in the order rows ended.

``--actions admissible`` replaces each action the model wrote with a random admissible command
(seeded; the tiny model's own actions are almost never admissible, and ALFWorld answers those
without running its engine): the env cost a policy that plays the game would pay, on the same
decode timeline. ``--model-path`` loads a trained policy instead (its own actions, its own turn
lengths), ``--device cuda`` decodes on a GPU.

Ends with
    env-step share of rollout wall time: in-process X.XXXX, pool X.XXXX
    overlap bound (fraction of rollout wall time): ceiling X.XXXX, one worker X.XXXX, pool ceiling X.XXXX
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from resrl_agents.config.schema import ModelConfig
from resrl_agents.models import load_policy
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.env_pool import EnvPool, LocalEnvs, make_envs
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.trainers.recipe import pick_device

ENV_ID = "resrl_agents/ALFWorld-v0"


class TracePolicy:
    """Records per ``generate`` call its start, its end and the time each row sampled EOS."""

    def __init__(self, policy: HFPolicy, turns: list[dict]):
        self.policy, self.turns = policy, turns

    def generate(self, prompts, params):
        eos, ended = set(self.policy.eos_ids), {}

        def on_step(alive, tok, _logits):
            now = time.perf_counter()
            ended.update((i, now) for i, t in zip(alive, tok.tolist()) if t in eos)

        start = time.perf_counter()
        gens = self.policy.generate(prompts, params, on_step=on_step)
        end = time.perf_counter()
        self.turns.append({"start": start, "end": end, "ended": [ended.get(i, end) for i in range(len(prompts))]})
        return gens


class TraceEnvs:
    """An env set (``LocalEnvs`` or ``EnvPool``) whose step phase is timed into the current turn;
    in-process, each env's step too. ``admissible``: actions replaced by random legal commands."""

    def __init__(self, inner, turns: list[dict], admissible: bool, seed: int):
        self.inner, self.turns, self.max_turns = inner, turns, inner.max_turns
        self.local = isinstance(inner, LocalEnvs)
        self.legal: dict[int, list[str]] | None = {} if admissible else None
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.inner)

    def reset_many(self, items):
        out = self.inner.reset_many(items)
        self._learn([i for i, *_ in items], [r[1] for r in out])
        return out

    def step_many(self, items):
        if self.legal is not None:
            items = [(i, f"<action>{self.rng.choice(self.legal[i])}</action>") for i, _ in items]
        start, each, out = time.perf_counter(), [], []
        if self.local:
            for item in items:
                tic = time.perf_counter()
                out += self.inner.step_many([item])
                each.append(time.perf_counter() - tic)
        else:
            out = self.inner.step_many(items)
        self.turns[-1].update(env=time.perf_counter() - start, each=each)
        self._learn([i for i, _ in items], [r[4] if isinstance(r, tuple) else {} for r in out])
        return out

    def _learn(self, idx: list[int], infos: list[dict]) -> None:
        if self.legal is not None:
            for i, info in zip(idx, infos):
                self.legal[i] = info.get("admissible_actions") or self.legal.get(i) or ["look"]


def left_after_decode(turn: dict) -> float:
    """Env time still to wait for once the decode ended, had one worker stepped each row's env
    as soon as the row ended (in the order rows ended)."""
    free = turn["start"]
    for i in sorted(range(len(turn["ended"])), key=lambda i: turn["ended"][i]):
        free = max(free, turn["ended"][i]) + turn["each"][i]
    return max(0.0, free - turn["end"])


def one_rollout(env_set, policy: HFPolicy, renderer: ChatRenderer, seeds: list[int], args) -> dict:
    turns: list[dict] = []
    envs = TraceEnvs(env_set, turns, args.actions == "admissible", seed=0)
    tic = time.perf_counter()
    rollout(envs, seeds, list(range(len(seeds))), TracePolicy(policy, turns), renderer, history="full",
            max_new_tokens=args.max_new, max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=0)
    wall = time.perf_counter() - tic
    out = {
        "wall": wall,
        "decode": sum(t["end"] - t["start"] for t in turns),
        "env": sum(t["env"] for t in turns),
        "tail": sum(t["end"] - min(t["ended"]) for t in turns),
        "ceiling": sum(min(t["env"], t["end"] - min(t["ended"])) for t in turns),
        "ended_early": statistics.mean(sum(e < t["end"] for e in t["ended"]) / len(t["ended"]) for t in turns),
    }
    if envs.local:
        out["one_worker"] = sum(sum(t["each"]) - left_after_decode(t) for t in turns)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=48)
    ap.add_argument("--max-turns", type=int, default=10)
    ap.add_argument("--env-workers", type=int, default=2, help="processes of the pool mode")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--model", default="tiny", choices=["tiny", "smollm2", "hf"])
    ap.add_argument("--model-path", default=None, help="a checkpoint to load (a trained policy's run dir)")
    ap.add_argument("--device", default="cpu", help="auto (cuda when available) | cpu | cuda")
    ap.add_argument("--actions", default="model", choices=["model", "admissible"])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, tok = load_policy(ModelConfig(name=args.model, path=args.model_path), device=device)
    renderer, policy = ChatRenderer(tok), HFPolicy(model, tok, device)
    kw, n = {"max_turns": args.max_turns}, args.groups * args.group_size
    seeds = [g for g in range(args.groups) for _ in range(args.group_size)]
    local = LocalEnvs(make_envs(ENV_ID, kw, n))
    pool = EnvPool(ENV_ID, kw, n, args.env_workers)
    for env_set in (local, pool):  # loading a game is a one-time cost per env: paid before timing
        env_set.reset_many([(i, s, None) for i, s in enumerate(seeds)])
    runs: dict[str, list[dict]] = {"in-process": [], "pool": []}
    for r in range(args.repeats):
        for mode, env_set in (("in-process", local), ("pool", pool)):
            runs[mode].append(one_rollout(env_set, policy, renderer, seeds, args))
            print(f"{mode} {r}: " + ", ".join(f"{k} {v:.3f}" for k, v in runs[mode][-1].items()), flush=True)
    pool.close()
    med = {mode: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for mode, rs in runs.items()}
    for mode, m in med.items():
        print(f"median {mode}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))

    def share(mode: str, key: str) -> float:  # per rollout, then the median: one load spike moves one run
        return statistics.median(x[key] / x["wall"] for x in runs[mode])

    print(f"env-step share of rollout wall time: in-process {share('in-process', 'env'):.4f}, "
          f"pool {share('pool', 'env'):.4f}")
    print(f"overlap bound (fraction of rollout wall time): ceiling {share('in-process', 'ceiling'):.4f}, "
          f"one worker {share('in-process', 'one_worker'):.4f}, pool ceiling {share('pool', 'ceiling'):.4f}")


if __name__ == "__main__":
    main()
