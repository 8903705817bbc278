"""Learning check (not a test; a few minutes on 2 CPU cores).

The tiny model is warm-started by a short SFT on generated 2-digit addition: a 900-step cosine
run, of which the step-500 checkpoint is taken (~20% sampled, ~41% greedy: the policy is neither
at 0 nor at 1; accuracy jumps from ~2% to ~90% between steps 400 and 900). GRPO and ResRL are
then trained from that same checkpoint. Sampled (T=1) and greedy accuracy on 500 held-out
problems are printed before and after each run; RL must raise the sampled accuracy. The SFT
trajectory is chaotic (other seeds, or float-level changes in the forward, learn the task later
or not by step 900), so the step-500 accuracy is printed and worth checking.

ResRL scales positive advantages by λ = 0.1 and most negative tokens by w < 1, so its gradients
are ~4x smaller than GRPO's at the same lr (loss/grad_norm in the metrics); it gets a 1.5x larger
lr here (at 3e-4 it collapsed, at 1e-4 it barely moved in 200 steps).

    python benchmarks/learning_check.py [--sft-steps 900] [--sft-start 500] [--rl-steps 300]
        [--lr 1e-4] [--lr-resrl 1.5e-4] [--algos grpo,resrl] [--sft-ckpt DIR (skip SFT)] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from resrl_agents.config.schema import ModelConfig, register_configs
from resrl_agents.models import load_policy
from resrl_agents.rollout.agent_loop import rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import HFPolicy
from resrl_agents.trainers.checkpoint import latest_checkpoint
from resrl_agents.trainers.recipe import RLRecipe, make_envs, run_recipe
from resrl_agents.trainers.sft import SFTRecipe

ENV = "resrl_agents/Math-v0"
EVAL_KW = {"source": "arithmetic", "difficulty": 1, "split": "test"}


def accuracy(model_path: str, n: int, temperature: float, batch: int = 100) -> float:
    model, tok = load_policy(ModelConfig(name="tiny", path=model_path))
    envs = make_envs(ENV, EVAL_KW, batch)
    policy, renderer = HFPolicy(model, tok), ChatRenderer(tok)
    won = 0
    for start in range(0, n, batch):
        idx = list(range(start, min(start + batch, n)))
        trajs = rollout(envs[: len(idx)], idx, [0] * len(idx), policy, renderer, history="full", max_new_tokens=16,
                        max_context_tokens=512, temperature=temperature, top_p=1.0, seed=1234 + start,
                        options=[{"index": i} for i in idx])
        won += sum(t.won for t in trajs)
    for e in envs:
        e.close()
    return won / n


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_module("resrl_agents.config", version_base="1.3"):
        return OmegaConf.to_object(compose(name, overrides=overrides))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=900)
    ap.add_argument("--sft-start", type=int, default=500, help="the SFT checkpoint RL starts from")
    ap.add_argument("--sft-lr", type=float, default=3e-3)
    ap.add_argument("--sft-batch", type=int, default=32)
    ap.add_argument("--rl-steps", type=int, default=300)
    ap.add_argument("--n-eval", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lr-resrl", type=float, default=1.5e-4, help="ResRL's lr")
    ap.add_argument("--algos", default="grpo,resrl")
    ap.add_argument("--sft-ckpt", default=None, help="start from this checkpoint instead of running SFT")
    ap.add_argument("--out", default="runs/learning_check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    register_configs()
    out = Path(args.out)
    common = ["env=math", "model=tiny", "trainer.num_threads=1", "trainer.progress=false"]
    tic = time.perf_counter()
    if args.sft_ckpt is None:
        run_recipe(SFTRecipe(compose_cfg("sft", common + [
            f"trainer.steps={args.sft_steps}", f"trainer.lr={args.sft_lr}", f"trainer.batch_size={args.sft_batch}",
            f"trainer.save_every={args.sft_start}", "trainer.keep_checkpoints=0", f"trainer.output_dir={out}/sft"])))
    sft_ckpt = args.sft_ckpt or str(out / "sft" / "checkpoints" / f"step_{args.sft_start:06d}")
    start_s, start_g = accuracy(sft_ckpt, args.n_eval, 1.0), accuracy(sft_ckpt, args.n_eval, 0.0)
    print(f"SFT warm start ({sft_ckpt}, {time.perf_counter() - tic:.0f}s): "
          f"sampled {start_s:.3f}  greedy {start_g:.3f}", flush=True)
    for algo in args.algos.split(","):
        tic = time.perf_counter()
        lr = args.lr_resrl if algo == "resrl" else args.lr
        run_recipe(RLRecipe(compose_cfg("train", common + [
            f"algo={algo}", f"model.path={sft_ckpt}", f"trainer.steps={args.rl_steps}", f"trainer.lr={lr}",
            "trainer.warmup_steps=5", "trainer.save_every=1000000", "rollout.max_new_tokens=16",
            "rollout.prompts_per_step=8", "rollout.group_size=8", "trainer.micro_batch_size=64",
            "rollout.drift_check_frac=0.05", f"trainer.output_dir={out}/{algo}"])))
        end = str(latest_checkpoint(out / algo))
        end_s, end_g = accuracy(end, args.n_eval, 1.0), accuracy(end, args.n_eval, 0.0)
        print(f"{algo}: sampled accuracy {start_s:.3f} -> {end_s:.3f} ({end_s - start_s:+.3f}), "
              f"greedy {start_g:.3f} -> {end_g:.3f}  [{args.rl_steps} steps, lr {lr:g}, {time.perf_counter() - tic:.0f}s]", flush=True)


if __name__ == "__main__":
    main()
