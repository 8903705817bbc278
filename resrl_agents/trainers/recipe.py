"""The RL recipe: ``setup`` builds the parts from config, ``train`` runs the steps, ``cleanup``
closes them. One training step reads top to bottom in numbered phases; the algorithms (GRPO,
Dr.GRPO, DAPO, NSR/PSR/W-REINFORCE, ResRL) differ only in the config they hand to the small
functions in ``advantages.py``, ``resrl.py`` and ``loss.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import time
from collections import defaultdict

import numpy as np
import torch

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.config.schema import TrainConfig
from resrl_agents.eval.validation import Validator, validation_curve
from resrl_agents.rollout.backends import make_rollout_policy
from resrl_agents.rollout.env_pool import EnvPool, close_envs, make_envs
from resrl_agents.models import load_policy
from resrl_agents.models.lora import add_lora, hf_state_dict
from resrl_agents.rollout.agent_loop import Layout, rollout
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.collate import collate, rollout_hidden
from resrl_agents.rollout.drift import drift_check
from resrl_agents.rollout.types import Trajectory
from resrl_agents.trainers import checkpoint as ckpt
from resrl_agents.trainers.advantages import group_advantages, informative_groups, length_scaled_reward, overlong_penalty
from resrl_agents.trainers.distributed import make_engine
from resrl_agents.trainers.forward import ResRLSettings, Scores, rollout_weights, score_batch
from resrl_agents.trainers.inspection import write_inspection
from resrl_agents.trainers.metrics import MetricsLogger, sample_records
from resrl_agents.trainers.resrl import GroupStats
from resrl_agents.trainers.update import ppo_update

GROUP_STRIDE = 1_000_000  # group ids: step * GROUP_STRIDE + index, unique over a run


def pick_device(name: str) -> torch.device:
    """``trainer.device``; under a launcher (``LOCAL_RANK`` set) a CUDA rank takes its own GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


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
        if t.eval_every < 0:
            raise ValueError(f"trainer.eval_every must be >= 0 (0 = no validation), got {t.eval_every}")
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        seed_everything(t.seed)
        if cfg.algo.success not in ("won", "reward"):
            raise ValueError(f"algo.success must be 'won' (the env's info['won']) or 'reward' (episode reward > 0), "
                             f"got {cfg.algo.success!r}")
        self.device = pick_device(t.device)
        self.start_step = 0
        resume_from = ckpt.latest_checkpoint(t.output_dir) if t.resume else None
        model_cfg = copy.copy(cfg.model)
        lora = cfg.model.lora.r > 0
        if resume_from is not None and not lora:  # LoRA: the base as configured, the adapters from the checkpoint
            if (resume_from / "adapter_config.json").exists():
                raise ValueError(f"{resume_from} holds LoRA adapters: resume it with the run's model.lora settings")
            model_cfg.path = str(resume_from)
        self.model, self.tokenizer = load_policy(model_cfg, device=self.device)
        if cfg.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if lora:  # only the adapters train (and only they are in the optimizer)
            self.model = add_lora(self.model, cfg.model.lora, adapter_dir=resume_from)
        self.ref_model = None
        if cfg.algo.kl_coef > 0:
            self.ref_model, _ = load_policy(cfg.model, device=self.device)  # the initial policy (LoRA: the base)
            self.ref_model.requires_grad_(False).eval()
        if t.deepspeed.enabled and cfg.rollout.backend != "hf":
            raise ValueError("trainer.deepspeed needs rollout.backend=hf (each rank generates with its own copy of the policy)")
        self.engine = make_engine(self.model, t, self.device)  # one process, or a DeepSpeed ZeRO rank
        self.rank, self.world_size = self.engine.rank, self.engine.world_size
        if cfg.rollout.prompts_per_step % self.world_size:
            raise ValueError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} must be a multiple of the "
                             f"{self.world_size} ranks (whole groups per rank)")
        self.optimizer = self.engine.optimizer
        warmup = max(t.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)
        n_envs = cfg.rollout.prompts_per_step // self.world_size * cfg.rollout.group_size  # this rank's share
        if cfg.rollout.env_workers > 0:  # envs in worker processes, stepped in parallel
            self.envs = EnvPool(cfg.env.id, dict(cfg.env.kwargs), n_envs, cfg.rollout.env_workers)
            self.max_turns = self.envs.max_turns[0]
        else:
            self.envs = make_envs(cfg.env.id, dict(cfg.env.kwargs), n_envs)
            self.max_turns = getattr(self.envs[0].unwrapped, "max_turns", 1)
        self.resrl = ResRLSettings.from_algo(cfg.algo) if cfg.algo.resrl else None
        self.rollout_exact = rollout_is_exact(cfg)  # its log-probs are the trained policy's
        # HF's checkpointed forwards keep no keys/values, so a shared prompt has none to share
        self.share_prefix = t.share_prefix and not cfg.model.gradient_checkpointing
        # the rollout keeps each token's state at algo.hidden_position: ResRL then needs no scoring pass
        self.keep_hidden = self.rollout_exact and self.resrl is not None
        self.policy = make_rollout_policy(cfg.rollout, model_cfg, self.engine.rollout_model, self.tokenizer, self.device,
                                          output_dir=t.output_dir, seed=t.seed,  # hf, or vllm (synced in phase 5)
                                          hidden_layer=cfg.algo.hidden_layer if self.keep_hidden else None,
                                          hidden_position=cfg.algo.hidden_position)
        self.renderer = ChatRenderer(self.tokenizer)
        self.update_rng = torch.Generator().manual_seed(t.seed)
        if resume_from is not None:
            state = ckpt.load_trainer_state(resume_from, self.rank)
            self.engine.load(resume_from, state)
            self.scheduler.load_state_dict(state["scheduler"])
            self.update_rng.set_state(state["update_rng"])
            ckpt.set_rng_state(state["rng"])
            self.start_step = state["step"]
        self.logger = MetricsLogger(t.output_dir, tensorboard=t.tensorboard, wandb=t.wandb,
                                    resume_step=self.start_step if resume_from else None) if self.rank == 0 else None
        # held-out validation of the in-memory policy, on rank 0 (its envs are built once, here)
        self.validator = Validator(cfg.env, t.eval, cfg.rollout) if t.eval_every and self.rank == 0 else None

    # ------------------------------------------------------------------ rollout helpers
    def _rollout_round(self, step: int, round_: int) -> list[Trajectory]:
        """One round: prompts_per_step groups of G episodes, each group from one task seed; under
        data parallelism this rank's share of them (groups rank, rank + world_size, ...)."""
        r, G = self.cfg.rollout, self.cfg.rollout.group_size
        rng = np.random.default_rng([self.cfg.trainer.seed, step, round_])
        task_seeds = rng.integers(0, 2**31 - 1, size=r.prompts_per_step).tolist()
        sample_seed = int(rng.integers(0, 2**31 - 1)) + self.rank
        base = step * GROUP_STRIDE + round_ * r.prompts_per_step
        mine = range(self.rank, r.prompts_per_step, self.world_size)
        seeds = [task_seeds[j] for j in mine for _ in range(G)]
        gids = [base + j for j in mine for _ in range(G)]
        return rollout(self.envs, seeds, gids, self.policy, self.renderer, history=r.history,
                       max_new_tokens=r.max_new_tokens, max_context_tokens=r.max_context_tokens,
                       temperature=r.temperature, top_p=r.top_p, seed=sample_seed)

    def _collect(self, step: int) -> tuple[list[Trajectory], list[Trajectory], int]:
        """Trajectories to train on (whole groups) and every trajectory sampled this step.

        DAPO dynamic sampling keeps only groups whose rewards differ and rolls out more rounds
        until ``prompts_per_step`` such groups are found (or the round budget is spent); under data
        parallelism each rank fills its own share.
        """
        a, r = self.cfg.algo, self.cfg.rollout
        rounds = 1 + (a.max_refill_rounds if a.dynamic_sampling else 0)
        wanted_groups = r.prompts_per_step // self.world_size
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
            if len({t.group_id for t in keep}) >= wanted_groups:
                break
        wanted = sorted({t.group_id for t in keep})[:wanted_groups]
        return [t for t in keep if t.group_id in wanted], seen, round_ + 1

    def _shaped_rewards(self, trajs: list[Trajectory]) -> torch.Tensor:
        a = self.cfg.algo
        reward = torch.tensor([t.reward for t in trajs], dtype=torch.float64)  # (N,)
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
        self.samples = sample_records(seen)  # written as text next to the metrics (samples.jsonl)
        metrics = {"rollout/rounds": float(rounds), "rollout/groups_trained": float(len({x.group_id for x in trajs})),
                   "perf/rollout_s": time.perf_counter() - tic}
        if Layout.parse(cfg.rollout.history).kind == "full" and cfg.rollout.drift_check_frac > 0:
            sample = seen[: max(1, math.ceil(len(seen) * cfg.rollout.drift_check_frac))]
            report = drift_check(sample, self.renderer)
            metrics |= {"rollout/drift_rate": report.drift_rate, "rollout/retok_rate": report.retok_rate}
            if report.drift_rate > cfg.rollout.drift_max_rate:
                raise RuntimeError(f"token drift {report.drift_rate:.3f} above rollout.drift_max_rate={cfg.rollout.drift_max_rate}")
        # 2-4. rewards, advantages, ResRL weights, update (all ranks update together, or none does)
        update = self.engine.all_sum([float(not trajs)])[0] == 0
        metrics |= self.learn(trajs, step) if update else {}

        # 5. weight sync: a separate rollout engine (rollout.backend=vllm) or ZeRO-3's full rollout
        # copy of the policy gets the updated weights
        if update:
            tic_sync = time.perf_counter()
            if cfg.rollout.backend == "vllm":
                self.policy.load_weights(hf_state_dict(self.model).items())  # LoRA: adapters merged in
            self.engine.sync_rollout_model()
            metrics["perf/weight_sync_s"] = time.perf_counter() - tic_sync
        metrics["perf/step_s"] = time.perf_counter() - tic
        # every rank's numbers in one record: episodes pooled, counts summed, times of the slowest
        episodes = [e for rank in self.engine.gather([episode_record(x) for x in seen]) for e in rank]
        return rollout_metrics(episodes) | merge_rank_metrics(self.engine.gather(metrics))

    def learn(self, trajs: list[Trajectory], step: int | None = None) -> dict[str, float]:
        """Phases 2-4 of a step on whole groups of trajectories (benchmarks call this directly).
        ``step`` (0-based) decides whether this step's ResRL weights are kept for inspection."""
        cfg, a, t = self.cfg, self.cfg.algo, self.cfg.trainer

        # 2. reward shaping and group advantages (over whole groups, before any micro-batching)
        reward = self._shaped_rewards(trajs)  # (N,) float64
        gid = torch.tensor([x.group_id for x in trajs])  # (N,)
        success = torch.tensor([x.won if a.success == "won" else x.reward > 0 for x in trajs])  # (N,) who is positive
        seq_adv = group_advantages(reward, gid, estimator=a.estimator, success=success, norm_std=a.norm_std, lam=a.lam)
        batch = collate(trajs, reward.tolist(), seq_adv.tolist(), history=cfg.rollout.history, pad_id=self.policy.pad_id,
                        success=success.tolist())
        metrics = {"reward/shaped_mean": float(reward.mean()), "reward/adv_abs_mean": float(seq_adv.abs().mean())}
        if t.skip_empty_updates and not (a.kl_coef or a.entropy_coef):
            if self.engine.all_sum([float(bool(seq_adv.any()))])[0] == 0:  # no group on any rank has a signal
                self.scheduler.step()
                return metrics | {"loss/optimizer_steps": 0.0, "loss/lr": self.scheduler.get_last_lr()[0]}

        # 3. old log-probs, reference log-probs, ResRL weights per whole group: from the rollout's
        # own forwards when it sampled with these weights, else one no-grad scoring pass
        tic = time.perf_counter()
        seeds = {g: hash((t.seed, g)) % (2**31) for g in gid.unique().tolist()}
        ref_logp, scores, score_metrics = self._old_logp_and_weights(batch, trajs, seeds)
        batch.adv = batch.seq_adv[:, None] * batch.weight * batch.loss_mask  # (B, T)
        metrics |= score_metrics | (resrl_metrics(scores.stats, batch) if self.resrl else {})
        if self.resrl and step is not None and t.inspect_every and step % t.inspect_every == 0 and self.rank == 0:
            write_inspection(t.output_dir, step, trajs, batch, scores.residual, scores.in_span, scores.stats,
                             self.tokenizer, dataclasses.asdict(self.resrl))
        metrics["perf/score_s"] = time.perf_counter() - tic

        # 4. update: PPO epochs, mini-batches of whole groups, exact gradient accumulation
        tic = time.perf_counter()
        metrics |= ppo_update(self.engine, batch, ref_logp, algo=a, ppo_epochs=t.ppo_epochs,
                              mini_batch_groups=t.mini_batch_groups, micro_batch_size=t.micro_batch_size,
                              micro_batch_tokens=t.micro_batch_tokens, temperature=cfg.rollout.temperature,
                              max_len=cfg.rollout.max_new_tokens * self.max_turns, device=self.device,
                              generator=self.update_rng, share_prefix=self.share_prefix)
        self.scheduler.step()
        metrics["perf/update_s"] = time.perf_counter() - tic
        metrics["perf/trained_tokens"] = float(batch.attention_mask.sum())
        return metrics | {"loss/lr": self.scheduler.get_last_lr()[0]}

    def _old_logp_and_weights(self, batch, trajs: list[Trajectory], seeds: dict[int, int]
                              ) -> tuple[torch.Tensor | None, Scores, dict[str, float]]:
        """Fill ``batch.logp_old`` and ``batch.weight``; return reference log-probs, the scores (ResRL
        stats and diagnostics) and metrics. ``trainer.rescore``: the rollout's sampling log-probs and
        hidden states (no forward: the sampler is the trained model with the same weights and
        distribution), or a no-grad scoring pass that recomputes them (then their mismatch is
        measured)."""
        t = self.cfg.trainer
        score = lambda model, resrl: score_batch(  # noqa: E731
            model, batch, micro_batch_size=t.micro_batch_size, micro_batch_tokens=t.micro_batch_tokens,
            temperature=self.cfg.rollout.temperature, device=self.device, resrl=resrl, group_seed=seeds,
            share_prefix=self.share_prefix)
        ref_logp = lambda: score(self.ref_model, None).logp_old if self.ref_model is not None else None  # noqa: E731
        if self.rollout_exact and (self.resrl is None or self.keep_hidden):
            hidden = rollout_hidden(trajs) if self.resrl is not None else None
            if self.resrl is None or hidden is not None:
                scores = (rollout_weights(batch, hidden, self.resrl, seeds, self.device) if self.resrl else
                          Scores(batch.logp_sample, None, torch.ones(batch.input_ids.shape), {}, None, None))
                batch.logp_old, batch.weight = scores.logp_old, scores.weight
                return ref_logp(), scores, {}
            if t.rescore == "never":
                raise RuntimeError("trainer.rescore=never, but the rollout kept no hidden states for ResRL (this "
                                   "model's cache goes through model.generate); use trainer.rescore=auto")
        scores = score(self.engine.rollout_model, self.resrl)
        batch.logp_old, batch.weight = scores.logp_old, scores.weight
        return ref_logp(), scores, logp_mismatch(batch)

    # ------------------------------------------------------------------ loop
    def train(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        t = self.cfg.trainer
        cols = [TextColumn("[bold]step {task.completed}/{task.total}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
        with Progress(*cols, disable=not t.progress or self.rank > 0, transient=False) as bar:
            task = bar.add_task("train", total=t.steps, completed=self.start_step, info="")
            if self.validator is not None and self.start_step == 0:  # the baseline, before any update
                self.logger.log(0, self.validator(self.policy, self.renderer))
            for step in range(self.start_step, t.steps):
                try:
                    m = self.train_step(step)
                except FloatingPointError as e:  # non-finite hidden states or rewards: say where
                    raise FloatingPointError(f"step {step + 1}: {e}") from None
                if self.validator is not None and ((step + 1) % t.eval_every == 0 or step + 1 == t.steps):
                    m |= self.validator(self.policy, self.renderer)
                if self.logger is not None:
                    self.logger.log(step + 1, m)
                    self.logger.log_samples(step + 1, self.samples)
                bar.update(task, advance=1, info=f"reward {m.get('rollout/reward_mean', float('nan')):.3f}")
                if (step + 1) % t.save_every == 0 or step + 1 == t.steps:
                    self.save(step + 1)
        if self.validator is not None:
            validation_curve(t.output_dir)

    def save(self, step: int) -> None:
        state = self.engine.optimizer_state() | {"scheduler": self.scheduler.state_dict(), "update_rng": self.update_rng.get_state()}
        ckpt.save_checkpoint(self.cfg.trainer.output_dir, step, self.engine.rollout_model, self.tokenizer, state,
                             self.cfg.trainer.keep_checkpoints, engine=self.engine, merged=self.cfg.trainer.export_merged)

    def cleanup(self) -> None:
        if self.logger is not None:
            self.logger.close()
        close_envs(self.envs)
        if self.validator is not None:
            self.validator.close()
        close = getattr(self.policy, "close", None)  # a vLLM engine holds memory and threads
        if close is not None:
            close()


def rollout_is_exact(cfg: TrainConfig) -> bool:
    """Whether old log-probs (and ResRL's states) are taken from the rollout (``trainer.rescore``).

    They are exact when the sampler is the trained model itself (``rollout.backend=hf``, with the
    weights the update starts from) and sampled from the loss's distribution softmax(logits / τ)
    (no nucleus cut, τ > 0): then the scoring pass would recompute the same numbers up to float
    rounding, for any number of PPO epochs and mini-batches (π_old is the sampling policy).
    """
    t, r = cfg.trainer, cfg.rollout
    if t.rescore not in ("auto", "always", "never"):
        raise ValueError(f"trainer.rescore must be auto, always or never, got {t.rescore!r}")
    exact = r.backend == "hf" and r.top_p >= 1.0 and r.temperature > 0
    if t.rescore == "never" and not exact:
        raise ValueError("trainer.rescore=never needs rollout.backend=hf, rollout.top_p=1 and rollout.temperature>0 "
                         "(else the sampling log-probs are not the trained policy's); use trainer.rescore=auto")
    return exact and t.rescore != "always"


def logp_mismatch(batch) -> dict[str, float]:
    """perf/logp_mismatch*: |recomputed - sampling| log-prob over policy tokens (what the importance
    ratio would carry if the rollout's log-probs were used)."""
    mask = batch.loss_mask.bool()
    if not mask.any():
        return {}
    d = (batch.logp_old - batch.logp_sample).abs()[mask]
    return {"perf/logp_mismatch": float(d.mean()), "perf/logp_mismatch_max": float(d.max())}


def episode_record(t: Trajectory) -> dict:
    """What ``rollout_metrics`` needs of an episode (small enough to gather from every rank)."""
    return {"reward": t.reward, "won": t.won, "turns": len(t.turns), "invalid": sum(tt.invalid for tt in t.turns),
            "response_len": t.response_length, "truncated": t.cut, "error": bool(t.error), "family": t.family,
            "group": t.group_id, "clipped": sum(tt.clipped for tt in t.turns),
            "completion_lens": [len(tt.action_ids) for tt in t.turns], "components": t.info.get("reward_components", {})}


def rollout_metrics(episodes: list[dict]) -> dict[str, float]:
    """rollout/* metrics over every sampled episode (``episode_record``s), with per-family success,
    and reward/<name>: the mean of each named reward component an env reports (NaN values, a
    reward function that abstained, left out)."""
    if not episodes:
        return {}
    n = len(episodes)
    turns = sum(e["turns"] for e in episodes)
    mean = lambda key: sum(e[key] for e in episodes) / n  # noqa: E731
    out = {"rollout/reward_mean": mean("reward"),
           "rollout/success": mean("won"),
           "rollout/episode_len": turns / n,
           "rollout/response_len": mean("response_len"),
           "rollout/invalid_rate": sum(e["invalid"] for e in episodes) / max(turns, 1),
           "rollout/truncated": mean("truncated"),
           "rollout/env_errors": float(sum(e["error"] for e in episodes))}
    out |= completion_metrics(episodes)
    fam: dict[str, list[bool]] = defaultdict(list)
    parts: dict[str, list[float]] = defaultdict(list)
    for e in episodes:
        if e["family"]:
            fam[e["family"]].append(e["won"])
        for name, value in e["components"].items():
            parts[name] += [value] if math.isfinite(value) else []
    return (out | {f"rollout/success/{k}": sum(v) / len(v) for k, v in sorted(fam.items())}
            | {f"reward/{k}": sum(v) / len(v) if v else math.nan for k, v in sorted(parts.items())})


def completion_metrics(episodes: list[dict]) -> dict[str, float]:
    """Per-completion (one generate call = one turn) lengths and cap hits, and the share of
    groups whose rewards are all equal (no learning signal under group-relative advantages)."""
    lens = [n for e in episodes for n in e["completion_lens"]]
    groups: dict[int, set[float]] = defaultdict(set)
    for e in episodes:
        groups[e["group"]].add(e["reward"])
    out = {"rollout/zero_spread_groups": sum(len(r) == 1 for r in groups.values()) / len(groups)}
    if lens:
        out |= {"rollout/clipped_frac": sum(e["clipped"] for e in episodes) / len(lens),
                "rollout/completion_len_mean": sum(lens) / len(lens),
                "rollout/completion_len_min": float(min(lens)), "rollout/completion_len_max": float(max(lens))}
    return out


SUMMED = ("rollout/groups_trained", "perf/trained_tokens", "resrl/degenerate_groups", "resrl/fallback_")


def merge_rank_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """One record from every rank's metrics: counts add up, ``perf/*_s`` times are the slowest
    rank's, the rest (losses, already whole-batch; per-rank means) are averaged over ranks."""
    if len(per_rank) == 1:
        return per_rank[0]
    out = {}
    for key in sorted({k for m in per_rank for k in m}):
        vals = [m[key] for m in per_rank if key in m]
        if key.startswith(SUMMED):
            out[key] = float(sum(vals))
        elif key.startswith("perf/") and key.endswith("_s"):
            out[key] = float(max(vals))
        else:
            finite = [v for v in vals if math.isfinite(v)]
            out[key] = float(sum(finite) / len(finite)) if finite else math.nan
    return out


def resrl_metrics(stats: dict[int, GroupStats], batch) -> dict[str, float]:
    """resrl/*: mean negative-token weight, fraction of groups weighted, mean residual energy,
    mean effective rank, and fallbacks by reason."""
    weighted = [s for s in stats.values() if s.weighted]
    n_neg = sum(s.n_neg for s in weighted)
    out = {"resrl/frac_groups_weighted": len(weighted) / max(len(stats), 1),
           "resrl/mean_neg_weight": sum(s.mean_neg_weight * s.n_neg for s in weighted) / n_neg if n_neg else float("nan"),
           "resrl/mean_residual": float(np.mean([s.mean_residual for s in weighted])) if weighted else float("nan"),
           "resrl/effective_rank": float(np.mean([s.rank for s in weighted])) if weighted else 0.0,
           "resrl/degenerate_groups": float(sum(s.degenerate for s in weighted)),
           "resrl/frac_in_span": sum(s.n_in_span for s in weighted) / n_neg if n_neg else float("nan")}
    for reason in ("no_pos", "no_neg", "few_pos_tokens"):
        out[f"resrl/fallback_{reason}"] = float(sum(s.reason == reason for s in stats.values()))
    return out
