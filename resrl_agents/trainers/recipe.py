"""The RL recipe: ``setup`` builds the parts from config, ``train`` runs the steps, ``cleanup``
closes them. One training step reads top to bottom in numbered phases; the algorithms (GRPO,
Dr.GRPO, DAPO, NSR/PSR/W-REINFORCE, ResRL) differ only in the config they hand to the small
functions in ``advantages.py``, ``resrl.py`` and ``loss.py``.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import defaultdict

import gymnasium as gym
import numpy as np
import torch

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.config.schema import TrainConfig
from resrl_agents.rollout.backends import make_rollout_policy
from resrl_agents.rollout.env_pool import EnvPool, close_envs
from resrl_agents.models import load_policy
from resrl_agents.rollout.agent_loop import Layout, rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.collate import collate
from resrl_agents.rollout.drift import drift_check
from resrl_agents.rollout.types import Trajectory
from resrl_agents.trainers import checkpoint as ckpt
from resrl_agents.trainers.advantages import group_advantages, informative_groups, length_scaled_reward, overlong_penalty
from resrl_agents.trainers.forward import ResRLSettings, score_batch
from resrl_agents.trainers.metrics import MetricsLogger
from resrl_agents.trainers.resrl import GroupStats
from resrl_agents.trainers.update import ppo_update

GROUP_STRIDE = 1_000_000  # group ids: step * GROUP_STRIDE + index, unique over a run


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_recipe(recipe) -> None:
    """setup, train, and always cleanup (envs, workers, engines) — what every entry point does."""
    recipe.setup()
    try:
        recipe.train()
    finally:
        recipe.cleanup()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RLRecipe:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        t = cfg.trainer
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        seed_everything(t.seed)
        self.device = pick_device(t.device)
        self.start_step = 0
        resume_from = ckpt.latest_checkpoint(t.output_dir) if t.resume else None
        model_cfg = copy.copy(cfg.model)
        if resume_from is not None:
            model_cfg.path = str(resume_from)
        self.model, self.tokenizer = load_policy(model_cfg, device=self.device)
        if cfg.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.ref_model = None
        if cfg.algo.kl_coef > 0:
            self.ref_model, _ = load_policy(cfg.model, device=self.device)  # the initial policy
            self.ref_model.requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
        warmup = max(t.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)
        n_envs = cfg.rollout.prompts_per_step * cfg.rollout.group_size
        if cfg.rollout.env_workers > 0:  # envs in worker processes, stepped in parallel
            self.envs = EnvPool(cfg.env.id, dict(cfg.env.kwargs), n_envs, cfg.rollout.env_workers)
            self.max_turns = self.envs.max_turns[0]
        else:
            self.envs = make_envs(cfg.env.id, dict(cfg.env.kwargs), n_envs)
            self.max_turns = getattr(self.envs[0].unwrapped, "max_turns", 1)
        self.policy = make_rollout_policy(cfg.rollout, model_cfg, self.model, self.tokenizer, self.device,
                                          output_dir=t.output_dir, seed=t.seed)  # hf, or vllm (synced in phase 5)
        self.renderer = ChatRenderer(self.tokenizer)
        self.resrl = ResRLSettings(**{k: getattr(cfg.algo, k) for k in ResRLSettings.__dataclass_fields__}) if cfg.algo.resrl else None
        self.update_rng = torch.Generator().manual_seed(t.seed)
        if resume_from is not None:
            state = ckpt.load_trainer_state(resume_from)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.update_rng.set_state(state["update_rng"])
            ckpt.set_rng_state(state["rng"])
            self.start_step = state["step"]
        self.logger = MetricsLogger(t.output_dir, tensorboard=t.tensorboard, wandb=t.wandb)

    # ------------------------------------------------------------------ rollout helpers
    def _rollout_round(self, step: int, round_: int) -> list[Trajectory]:
        """One round: prompts_per_step groups of G episodes, each group from one task seed."""
        r, G = self.cfg.rollout, self.cfg.rollout.group_size
        rng = np.random.default_rng([self.cfg.trainer.seed, step, round_])
        task_seeds = rng.integers(0, 2**31 - 1, size=r.prompts_per_step).tolist()
        base = step * GROUP_STRIDE + round_ * r.prompts_per_step
        seeds = [s for s in task_seeds for _ in range(G)]
        gids = [base + j for j in range(r.prompts_per_step) for _ in range(G)]
        return rollout(self.envs, seeds, gids, self.policy, self.renderer, history=r.history,
                       max_new_tokens=r.max_new_tokens, max_context_tokens=r.max_context_tokens,
                       temperature=r.temperature, top_p=r.top_p, seed=int(rng.integers(0, 2**31 - 1)))

    def _collect(self, step: int) -> tuple[list[Trajectory], list[Trajectory], int]:
        """Trajectories to train on (whole groups) and every trajectory sampled this step.

        DAPO dynamic sampling keeps only groups whose rewards differ and rolls out more rounds
        until ``prompts_per_step`` such groups are found (or the round budget is spent).
        """
        a, r = self.cfg.algo, self.cfg.rollout
        rounds = 1 + (a.max_refill_rounds if a.dynamic_sampling else 0)
        keep: list[Trajectory] = []
        seen: list[Trajectory] = []
        for round_ in range(rounds):
            trajs = [t for t in self._rollout_round(step, round_)]
            seen += trajs
            if not a.dynamic_sampling:
                return [t for t in trajs if not t.error], seen, 1
            ok = [t for t in trajs if not t.error]
            if ok:
                mask = informative_groups(torch.tensor([t.reward for t in ok]), torch.tensor([t.group_id for t in ok]))
                keep += [t for t, m in zip(ok, mask.tolist()) if m]
            if len({t.group_id for t in keep}) >= r.prompts_per_step:
                break
        wanted = sorted({t.group_id for t in keep})[: r.prompts_per_step]
        return [t for t in keep if t.group_id in wanted], seen, round_ + 1

    def _shaped_rewards(self, trajs: list[Trajectory]) -> torch.Tensor:
        a = self.cfg.algo
        reward = torch.tensor([t.reward for t in trajs], dtype=torch.float)  # (N,)
        length = torch.tensor([t.response_length for t in trajs], dtype=torch.float)  # (N,)
        budget = self.cfg.rollout.max_new_tokens * self.max_turns
        if a.length_scale:
            reward = length_scaled_reward(reward, length, max_len=budget, start_frac=a.length_scale_start, min_scale=a.length_scale_min)
        if a.overlong_buffer:
            reward = reward + overlong_penalty(length, max_len=budget, buffer_len=a.overlong_buffer, penalty=a.overlong_penalty)
        return reward

    # ------------------------------------------------------------------ the step
    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        tic = time.perf_counter()

        # 1. rollout: G episodes per task from the same seed, exact token ids kept
        trajs, seen, rounds = self._collect(step)
        metrics = rollout_metrics(seen) | {"rollout/rounds": float(rounds), "rollout/groups_trained": float(len({x.group_id for x in trajs})),
                                           "perf/rollout_s": time.perf_counter() - tic}
        if Layout.parse(cfg.rollout.history).kind == "full" and cfg.rollout.drift_check_frac > 0:
            sample = seen[: max(1, math.ceil(len(seen) * cfg.rollout.drift_check_frac))]
            report = drift_check(sample, self.renderer)
            metrics |= {"rollout/drift_rate": report.drift_rate, "rollout/retok_rate": report.retok_rate}
            if report.drift_rate > cfg.rollout.drift_max_rate:
                raise RuntimeError(f"token drift {report.drift_rate:.3f} above rollout.drift_max_rate={cfg.rollout.drift_max_rate}")
        # 2-4. rewards, advantages, ResRL weights, update
        metrics |= self.learn(trajs) if trajs else {}

        # 5. weight sync: a separate rollout engine (rollout.backend=vllm) loads the updated weights
        if trajs and cfg.rollout.backend == "vllm":
            tic_sync = time.perf_counter()
            self.policy.load_weights(self.model.state_dict().items())
            metrics["perf/weight_sync_s"] = time.perf_counter() - tic_sync
        return metrics | {"perf/step_s": time.perf_counter() - tic}

    def learn(self, trajs: list[Trajectory]) -> dict[str, float]:
        """Phases 2-4 of a step on whole groups of trajectories (benchmarks call this directly)."""
        cfg, a, t = self.cfg, self.cfg.algo, self.cfg.trainer

        # 2. reward shaping and group advantages (over whole groups, before any micro-batching)
        reward = self._shaped_rewards(trajs)  # (N,)
        gid = torch.tensor([x.group_id for x in trajs])  # (N,)
        seq_adv = group_advantages(reward, gid, estimator=a.estimator, norm_std=a.norm_std, lam=a.lam)  # (N,)
        batch = collate(trajs, reward.tolist(), seq_adv.tolist(), history=cfg.rollout.history, pad_id=self.policy.pad_id)
        metrics = {"reward/shaped_mean": float(reward.mean()), "reward/adv_abs_mean": float(seq_adv.abs().mean())}

        # 3. one no-grad pass: old log-probs, reference log-probs, ResRL weights per whole group
        tic = time.perf_counter()
        seeds = {g: hash((t.seed, g)) % (2**31) for g in gid.unique().tolist()}
        batch.logp_old, ref_logp, batch.weight, stats = score_batch(
            self.model, batch, micro_batch_size=t.micro_batch_size, micro_batch_tokens=t.micro_batch_tokens,
            temperature=cfg.rollout.temperature, device=self.device, resrl=self.resrl, group_seed=seeds,
            ref_model=self.ref_model)
        batch.adv = batch.seq_adv[:, None] * batch.weight * batch.loss_mask  # (B, T)
        metrics |= resrl_metrics(stats, batch) if self.resrl else {}
        metrics["perf/score_s"] = time.perf_counter() - tic

        # 4. update: PPO epochs, mini-batches of whole groups, exact gradient accumulation
        tic = time.perf_counter()
        metrics |= ppo_update(self.model, self.optimizer, batch, ref_logp, algo=a, ppo_epochs=t.ppo_epochs,
                              mini_batch_groups=t.mini_batch_groups, micro_batch_size=t.micro_batch_size,
                              micro_batch_tokens=t.micro_batch_tokens,
                              grad_clip=t.grad_clip, temperature=cfg.rollout.temperature,
                              max_len=cfg.rollout.max_new_tokens * self.max_turns, device=self.device,
                              generator=self.update_rng)
        self.scheduler.step()
        metrics["perf/update_s"] = time.perf_counter() - tic
        metrics["perf/trained_tokens"] = float(batch.attention_mask.sum())
        return metrics | {"loss/lr": self.scheduler.get_last_lr()[0]}

    # ------------------------------------------------------------------ loop
    def train(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        t = self.cfg.trainer
        cols = [TextColumn("[bold]step {task.completed}/{task.total}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
        with Progress(*cols, disable=not t.progress, transient=False) as bar:
            task = bar.add_task("train", total=t.steps, completed=self.start_step, info="")
            for step in range(self.start_step, t.steps):
                m = self.train_step(step)
                self.logger.log(step + 1, m)
                bar.update(task, advance=1, info=f"reward {m.get('rollout/reward_mean', float('nan')):.3f}")
                if (step + 1) % t.save_every == 0 or step + 1 == t.steps:
                    self.save(step + 1)

    def save(self, step: int) -> None:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "update_rng": self.update_rng.get_state()}
        ckpt.save_checkpoint(self.cfg.trainer.output_dir, step, self.model, self.tokenizer, state, self.cfg.trainer.keep_checkpoints)

    def cleanup(self) -> None:
        self.logger.close()
        close_envs(self.envs)
        close = getattr(self.policy, "close", None)  # a vLLM engine holds memory and threads
        if close is not None:
            close()


def make_envs(env_id: str, kwargs: dict, n: int) -> list[gym.Env]:
    """``n`` copies of an env; copies share the first one's heavy resources (``shared_kwargs``)."""
    first = gym.make(env_id, **kwargs)
    shared = first.unwrapped.shared_kwargs()
    return [first] + [gym.make(env_id, **kwargs, **shared) for _ in range(n - 1)]


def rollout_metrics(trajs: list[Trajectory]) -> dict[str, float]:
    """rollout/* metrics over every sampled trajectory, with per-family success."""
    if not trajs:
        return {}
    n = len(trajs)
    turns = [len(x.turns) for x in trajs]
    invalid = sum(tt.invalid for x in trajs for tt in x.turns)
    out = {"rollout/reward_mean": sum(x.reward for x in trajs) / n,
           "rollout/success": sum(x.won for x in trajs) / n,
           "rollout/episode_len": sum(turns) / n,
           "rollout/response_len": sum(x.response_length for x in trajs) / n,
           "rollout/invalid_rate": invalid / max(sum(turns), 1),
           "rollout/truncated": sum(x.truncated for x in trajs) / n,
           "rollout/env_errors": float(sum(bool(x.error) for x in trajs))}
    fam: dict[str, list[bool]] = defaultdict(list)
    for x in trajs:
        if x.family:
            fam[x.family].append(x.won)
    return out | {f"rollout/success/{k}": sum(v) / len(v) for k, v in sorted(fam.items())}


def resrl_metrics(stats: list[GroupStats], batch) -> dict[str, float]:
    """resrl/*: mean negative-token weight, fraction of groups weighted, mean residual energy,
    mean effective rank, and fallbacks by reason."""
    weighted = [s for s in stats if s.weighted]
    neg_tok = (batch.seq_adv[:, None] < 0) & batch.loss_mask.bool()  # (B, T)
    out = {"resrl/frac_groups_weighted": len(weighted) / max(len(stats), 1),
           "resrl/mean_neg_weight": float(batch.weight[neg_tok].mean()) if neg_tok.any() else float("nan"),
           "resrl/mean_residual": float(np.mean([s.mean_residual for s in weighted])) if weighted else float("nan"),
           "resrl/effective_rank": float(np.mean([s.rank for s in weighted])) if weighted else 0.0,
           "resrl/degenerate_groups": float(sum(s.degenerate for s in weighted))}
    for reason in ("no_pos", "no_neg", "few_pos_tokens"):
        out[f"resrl/fallback_{reason}"] = float(sum(s.reason == reason for s in stats))
    return out
