"""The policy update of one training step: PPO epochs over mini-batches of whole groups, each
split into micro-batches whose gradients accumulate exactly (see ``loss.aggregate``)."""

from __future__ import annotations

from collections import defaultdict

import torch

from resrl_agents.config.schema import AlgoConfig
from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.forward import causal_logits, forward_chunks, pad_left, shared_prefix_len, trim
from resrl_agents.trainers.loss import aggregate, entropy_from_logits, kl_penalty, policy_loss, token_logp


def group_minibatches(group_id: torch.Tensor, groups_per_mb: int | None, generator: torch.Generator) -> list[torch.Tensor]:
    """Row indices of mini-batches made of whole groups, groups in a shuffled order."""
    uniq, inv = torch.unique(group_id, return_inverse=True)
    order = torch.randperm(len(uniq), generator=generator)
    size = groups_per_mb or len(uniq)
    out = []
    for i in range(0, len(uniq), size):
        chosen = order[i:i + size]
        out.append(torch.isin(inv, chosen).nonzero().squeeze(1))
    return out


@torch.no_grad()
def detached_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``(b, t)`` token entropy for the metrics, one row at a time: the full-vocabulary
    temporaries of one row, not of the micro-batch, exist at once."""
    return torch.cat([entropy_from_logits(logits[i:i + 1].detach(), temperature) for i in range(logits.shape[0])])


def ppo_update(engine, batch: Batch, ref_logp: torch.Tensor | None, *, algo: AlgoConfig,
               ppo_epochs: int, mini_batch_groups: int | None, micro_batch_size: int,
               temperature: float, max_len: int, device: torch.device, generator: torch.Generator,
               micro_batch_tokens: int | None = None, share_prefix: bool = False) -> dict[str, float]:
    """Run the update with ``engine`` (``trainers/distributed.py``); ``batch.adv`` and
    ``batch.logp_old`` must be filled. Returns mean metrics over the whole (all-rank) batch.

    Under data parallelism ``batch`` holds this rank's groups and ``mini_batch_groups`` counts
    groups per rank; token and sequence counts are summed over ranks, and every rank runs as many
    mini- and micro-batches as the busiest one (the extra ones with zero loss).
    ``share_prefix``: a micro-batch holds rows of one group, its shared prompt run once.
    """
    sums: dict[str, float] = defaultdict(float)
    grad_norms: list[float] = []
    model = engine.train_module
    model.train()
    for _ in range(ppo_epochs):
        minis = group_minibatches(batch.group_id, mini_batch_groups, generator)
        for i in range(engine.all_max(len(minis))):
            mini = batch.rows(minis[i] if i < len(minis) else torch.zeros(0, dtype=torch.long))
            num_tokens, num_seqs = engine.all_sum([float(mini.loss_mask.sum()), float(mini.num_rows)])
            num_tokens = max(num_tokens, 1.0)
            engine.zero_grad()
            # rows of similar length share a micro-batch (less padding); the sum is the same
            lengths = mini.attention_mask.sum(1)
            chunks = forward_chunks(lengths, mini.group_id, micro_batch_size, micro_batch_tokens, by_group=share_prefix)
            for j in range(engine.all_max(len(chunks))):
                if j >= len(chunks):  # another rank has more micro-batches: match its passes
                    engine.backward(causal_logits(model, torch.zeros(1, 1, dtype=torch.long, device=device)).sum() * 0.0)
                    continue
                idx = chunks[j]
                mb = trim(mini.rows(idx))
                t = mb.input_ids.shape[1]
                ids = mb.input_ids.to(device)  # right-padded
                mask, adv, logp_old = (x.to(device) for x in (mb.loss_mask, mb.adv, mb.logp_old))
                p = shared_prefix_len(mb.input_ids, mb.loss_mask, lengths[idx]) if share_prefix else 0
                logits = causal_logits(model, ids, p)  # (b, t - p, V)
                logp = pad_left(token_logp(logits, ids[:, p:], temperature), p)  # (b, t)
                loss_tok, m = policy_loss(logp, logp_old, adv, mask, clip_low=algo.clip_low,
                                          clip_high=algo.clip_high, dual_clip=algo.dual_clip)
                if algo.entropy_coef:
                    ent = pad_left(entropy_from_logits(logits, temperature), p)  # (b, t)
                    loss_tok = loss_tok - algo.entropy_coef * ent
                else:
                    ent = pad_left(detached_entropy(logits, temperature), p)  # (b, t), logged only
                m["entropy"] = (ent.detach() * mask).sum() / mask.sum().clamp_min(1)
                if ref_logp is not None and algo.kl_coef:
                    kl = kl_penalty(logp, ref_logp[minis[i]][idx, :t].to(device), algo.kl_estimator)  # (b, t)
                    loss_tok = loss_tok + algo.kl_coef * kl
                    m["kl_ref"] = (kl * mask).sum() / mask.sum().clamp_min(1)
                loss = aggregate(loss_tok, mask, algo.agg, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len)
                engine.backward(loss)
                share = float(mask.sum()) / num_tokens  # token-weighted metric average
                sums["loss/policy"] += float(loss.detach())
                for k, v in m.items():
                    sums[f"loss/{k}"] += float(v) * share
            grad_norms.append(engine.step())
    # each rank's sums are its share of whole-batch means: add them up (over the keys of all ranks)
    keys = sorted(set().union(*engine.gather(sorted(sums))))
    n_updates = max(len(grad_norms), 1)
    totals = dict(zip(keys, engine.all_sum([sums[k] for k in keys])))
    return ({k: v / n_updates for k, v in totals.items()} | {"loss/grad_norm": sum(grad_norms) / n_updates,
                                                            "loss/optimizer_steps": float(len(grad_norms))})
