"""Supervised warm start: cross-entropy on assistant tokens only, so RL can start from a policy
that is neither at 0 nor at 1. Examples come from a jsonl of ``{"messages": [...]}`` or from an
env's expert (``env.unwrapped.expert_action()``) played through the env's own prompts, tools and
observation messages, so SFT sees exactly the text RL will show."""

from __future__ import annotations

import json
import math
import random
import time

import gymnasium as gym
import torch

import resrl_agents.envs  # noqa: F401  (registers the env ids)
from resrl_agents.config.schema import SFTConfig
from resrl_agents.models import load_policy
from resrl_agents.rollout.agent_loop import first_messages, observation_messages, user_text
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.trainers import checkpoint as ckpt
from resrl_agents.trainers.distributed import make_engine
from resrl_agents.trainers.metrics import MetricsLogger
from resrl_agents.trainers.recipe import pick_device, seed_everything


Conversation = tuple[list[dict], list[dict] | None]  # (messages, OpenAI tool schemas or None)


def expert_conversations(env_id: str, env_kwargs: dict, n: int, seed: int) -> list[Conversation]:
    """Play the env's expert for ``n`` episodes (seeds seed, seed+1, ...) and keep the chats."""
    env = gym.make(env_id, **env_kwargs)
    expert = env.unwrapped.expert_action
    convs = []
    for i in range(n):
        obs, info = env.reset(seed=seed + i)
        msgs = first_messages(info, user_text(obs, info))
        done = False
        while not done:
            action = expert()
            if action is None:
                if i == 0 and len(msgs) <= 2:
                    raise ValueError(f"{env_id} has no expert; pass trainer.data=<jsonl of messages> instead")
                break
            msgs.append({"role": "assistant", "content": action})
            obs, _, terminated, truncated, step_info = env.step(action)
            done = terminated or truncated
            if not done:
                info = {**info, **step_info}
                msgs += observation_messages(obs, step_info, info)
        convs.append((msgs, info.get("tools")))
    env.close()
    return convs


def read_conversations(path: str) -> list[Conversation]:
    """Lines of ``{"messages": [...], "tools": [...]}`` (``tools`` optional)."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["messages"], r.get("tools")) for r in rows]


def tokenize_conversation(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> tuple[list[int], list[int]]:
    """(ids, mask) laid out as a ``full``-history rollout lays out its sequence, with any chat
    template: the prompt, then per assistant turn the text the model writes (content and tool calls
    as the template renders them) and the template's turn-end token (mask 1), then the template's
    continuation up to the next assistant turn (mask 0)."""
    renderer = ChatRenderer(tokenizer)
    end_id = renderer.turn_end[1]
    turns = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not turns:
        raise ValueError("a conversation has no assistant message to learn from")
    ids = renderer.encode(renderer.render(messages[: turns[0]], add_generation_prompt=True, tools=tools))
    mask = [0] * len(ids)
    for a, nxt in zip(turns, turns[1:] + [None]):
        action = renderer.encode(renderer.split_turn(messages[:a], messages[a], tools)[0])
        action += [end_id] if end_id is not None else []
        ids, mask = ids + action, mask + [1] * len(action)
        if nxt is not None:
            context = renderer.encode(renderer.continuation(messages[:a], messages[a], action, True,
                                                            messages[a + 1: nxt], tools))
            ids, mask = ids + context, mask + [0] * len(context)
    return ids, mask


def sft_loss(model, ids: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy over assistant tokens; ``ids/attn/mask (B, T)``.

    Keeps the padding mask, unlike the RL forwards (``forward.causal_logits``): both give the same
    loss up to float rounding, but the bundled tiny model's warm start (2-digit addition) is
    chaotic, and the README's recipe was measured on this path (seeds 0 and 2 learn the task by
    step 900 here; 0 of 3 seeds did without the mask).
    """
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]  # (B, T-1, V)
    target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)  # (B, T-1)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100)


def pad(rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for i, (r, m) in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        attn[i, : len(r)] = 1
        mask[i, : len(r)] = torch.tensor(m)
    return ids, attn, mask


class SFTRecipe:
    def __init__(self, cfg: SFTConfig):
        self.cfg = cfg

    def setup(self) -> None:
        t = self.cfg.trainer
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        seed_everything(t.seed)
        if self.cfg.model.lora.r > 0:
            raise ValueError("model.lora is for RL training (resrl_agents.train); SFT trains every weight: set model.lora.r=0")
        self.device = pick_device(t.device)
        self.model, self.tokenizer = load_policy(self.cfg.model, device=self.device)
        self.engine = make_engine(self.model, t, self.device)  # one process, or a DeepSpeed ZeRO rank
        self.rank, self.world_size = self.engine.rank, self.engine.world_size
        if t.batch_size % self.world_size:
            raise ValueError(f"trainer.batch_size={t.batch_size} must be a multiple of the {self.world_size} ranks")
        convs = read_conversations(t.data) if t.data else expert_conversations(
            self.cfg.env.id, dict(self.cfg.env.kwargs), t.num_examples, t.seed)
        self.rows = [tokenize_conversation(self.tokenizer, msgs, tools) for msgs, tools in convs]
        n_batches = math.ceil(len(self.rows) / t.batch_size)
        self.total = t.steps if t.steps > 0 else t.epochs * n_batches
        self.optimizer = self.engine.optimizer
        warm = max(t.warmup_steps, 1)
        cosine = lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(self.total - warm, 1))))  # noqa: E731
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: (s + 1) / warm if s < warm else cosine(s))
        self.logger = MetricsLogger(t.output_dir, tensorboard=t.tensorboard, wandb=False) if self.rank == 0 else None

    def train(self) -> None:
        from rich.progress import Progress

        t = self.cfg.trainer
        rng = random.Random(t.seed)
        order: list[int] = []
        pad_id = self.tokenizer.pad_token_id
        model = self.engine.train_module
        model.train()
        with Progress(disable=not t.progress or self.rank > 0) as bar:
            task = bar.add_task("sft", total=self.total)
            for step in range(self.total):
                tic = time.perf_counter()
                if len(order) < t.batch_size:  # reshuffle every epoch
                    order += rng.sample(range(len(self.rows)), len(self.rows))
                take, order = order[: t.batch_size], order[t.batch_size:]
                mine = take[self.rank::self.world_size]  # this rank's rows of the batch
                ids, attn, mask = (x.to(self.device) for x in pad([self.rows[i] for i in mine], pad_id))
                # the mean over this rank's assistant tokens, weighted by its share of the batch's
                n_local = float(mask[:, 1:].sum())
                share = n_local / self.engine.all_sum([n_local])[0]  # exactly 1.0 in one process
                loss = sft_loss(model, ids, attn, mask) * share
                self.engine.zero_grad()
                self.engine.backward(loss)
                gn = self.engine.step()
                self.scheduler.step()
                loss_all = self.engine.all_sum([float(loss.detach())])[0]  # the whole batch's mean
                if self.logger is not None:
                    self.logger.log(step + 1, {"loss/sft": loss_all, "loss/grad_norm": gn,
                                               "loss/lr": self.scheduler.get_last_lr()[0], "perf/step_s": time.perf_counter() - tic})
                bar.update(task, advance=1)
                if t.save_every and (step + 1) % t.save_every == 0:
                    self.save(step + 1)
        self.save(self.total)

    def save(self, step: int) -> None:
        self.engine.sync_rollout_model()  # ZeRO-3: gather the full weights to write them
        ckpt.save_checkpoint(self.cfg.trainer.output_dir, step, self.engine.rollout_model, self.tokenizer, {"kind": "sft"},
                             keep=self.cfg.trainer.keep_checkpoints, engine=self.engine)

    def cleanup(self) -> None:
        if self.logger is not None:
            self.logger.close()
