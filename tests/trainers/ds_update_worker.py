"""One rank of ``test_distributed.py``: for each ZeRO stage, the DeepSpeed update of this rank's
groups (rank 0: groups 0-2, rank 1: group 3, so the ranks run different numbers of micro-batches)
and rank 0's single-process update of the whole batch; then one mini-batch per group (3 optimizer
steps on rank 0, 1 on rank 1, which must follow with empty ones). Writes the parameter
differences as JSON.

Run with ``python -m torch.distributed.run --nproc_per_node 2 ds_update_worker.py OUT CACHE``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from resrl_agents.config.schema import AlgoConfig, DeepSpeedConfig, ModelConfig, TrainerConfig  # noqa: E402
from resrl_agents.models import load_policy  # noqa: E402
from resrl_agents.trainers.distributed import make_engine  # noqa: E402
from resrl_agents.trainers.forward import score_batch  # noqa: E402
from resrl_agents.trainers.update import ppo_update  # noqa: E402
from tests.trainers.test_forward import _batch  # noqa: E402

LR = 1e-3


def update(engine, batch, mini_batch_groups=None) -> dict[str, float]:
    return ppo_update(engine, batch, None, algo=AlgoConfig(), ppo_epochs=1, mini_batch_groups=mini_batch_groups, micro_batch_size=3,
                      temperature=1.0, max_len=24, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))


def full_params(engine, stage: int) -> list[torch.Tensor]:
    if stage < 3:
        return [p.detach().clone() for p in engine.module.parameters()]
    engine.sync_rollout_model()
    return [p.detach().clone() for p in engine.rollout_model.parameters()]


def main() -> None:
    out, cache = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    model, tok = load_policy(ModelConfig(name="tiny", cache_dir=cache))
    batch = _batch(tok, n_groups=4)  # 16 rows, groups 0..3
    batch.logp_old, _, batch.weight, *_ = score_batch(model, batch, micro_batch_size=16, temperature=1.0,
                                                     device=torch.device("cpu"), resrl=None, group_seed={})
    batch.adv = batch.seq_adv[:, None] * batch.loss_mask
    report = {}
    for stage in (0, 1, 2, 3):
        t = TrainerConfig(lr=LR, grad_clip=1e9, deepspeed=DeepSpeedConfig(enabled=True, zero_stage=stage))
        engine = make_engine(copy.deepcopy(model), t, torch.device("cpu"))
        mine = torch.arange(0, 12) if engine.rank == 0 else torch.arange(12, 16)
        m = update(engine, batch.rows(mine))
        params = full_params(engine, stage)
        m_groups = update(engine, batch.rows(mine), mini_batch_groups=1)
        after = torch.cat([p.flatten() for p in full_params(engine, stage)])
        other = engine.gather(after)[1]  # rank 1's copy of the weights
        if engine.rank == 0:
            ref_model = copy.deepcopy(model)
            ref = make_engine(ref_model, TrainerConfig(lr=LR, grad_clip=1e9), torch.device("cpu"))
            m_ref = update(ref, batch)
            diff = max(float((a - b).abs().max()) for a, b in zip(params, ref_model.parameters()))
            moved = max(float((a - b).abs().max()) for a, b in zip(ref_model.parameters(), model.parameters()))
            report[stage] = {"max_diff": diff, "moved": moved, "loss": m["loss/policy"], "loss_ref": m_ref["loss/policy"],
                             "grad_norm": m["loss/grad_norm"], "grad_norm_ref": m_ref["loss/grad_norm"],
                             "steps_per_group": m_groups["loss/optimizer_steps"],
                             "ranks_differ": float((after - other).abs().max())}
    if report:
        out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
