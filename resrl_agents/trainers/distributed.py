"""Where the update runs: one process (``LocalEngine``) or data parallel under DeepSpeed ZeRO
(``DeepSpeedEngine``, one process per device, launched by ``torchrun``, or by ``deepspeed
--no_local_rank``: Hydra takes no ``--local_rank`` flag).

Data parallelism splits a step's prompt groups across ranks: each rank rolls out, scores and
weights its own whole groups (ARCHITECTURE invariant 3), so ResRL's subspaces and the group
advantages never see another rank. Ranks meet only in the update: losses are normalised by
token and sequence counts summed over all ranks, so the averaged gradient is exactly that of the
whole batch, and every rank runs the same number of forward/backward passes (ZeRO-2/3 reduce or
gather parameters inside them; a rank with fewer rows runs zero-loss passes).

ZeRO-3 partitions the parameters, so a rank cannot run a forward pass alone. Rollout and scoring
use a full copy of the policy on each rank (``rollout_model``), refreshed from the gathered
parameters after every update: more memory than the partition alone (what verl's hybrid engine
also trades), no collectives during generation.
"""

from __future__ import annotations

import copy
import math
import os
import socket
from pathlib import Path

import torch

from resrl_agents.config.schema import SFTTrainerConfig, TrainerConfig


def torch_optimizer(opt) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer inside DeepSpeed's wrappers (for the LR scheduler)."""
    while not isinstance(opt, torch.optim.Optimizer):
        opt = opt.optimizer
    return opt


class LocalEngine:
    """A single process: a torch optimizer and gradient clipping."""

    rank, world_size = 0, 1

    def __init__(self, model, optimizer: torch.optim.Optimizer, grad_clip: float):
        self.module = self.train_module = self.rollout_model = model
        self.optimizer, self.grad_clip = optimizer, grad_clip

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> float:
        """Clip, step; the global gradient norm before clipping."""
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        return float(norm)

    def all_sum(self, values: list[float]) -> list[float]:
        return list(values)

    def all_max(self, n: int) -> int:
        return n

    def gather(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    def sync_rollout_model(self) -> None:
        pass

    def optimizer_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def save_shards(self, ckpt_dir: Path) -> None:
        pass

    def load(self, ckpt_dir: Path, state: dict) -> None:
        if "optimizer" not in state:
            raise ValueError(f"{ckpt_dir} was written under DeepSpeed (its optimizer state is in ZeRO shards): resume it "
                             f"with trainer.deepspeed.enabled=true, or start a new run from its weights (model.path={ckpt_dir})")
        self.optimizer.load_state_dict(state["optimizer"])


class DeepSpeedEngine:
    """One rank of a DeepSpeed ZeRO data-parallel group (``trainer.deepspeed``)."""

    def __init__(self, model, t: TrainerConfig | SFTTrainerConfig, device: torch.device):
        import deepspeed
        import torch.distributed as dist

        ds = t.deepspeed
        backend = ds.backend if ds.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        if "RANK" not in os.environ:  # no launcher: a group of one (ZeRO-Offload on one device, say)
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        deepspeed.init_distributed(dist_backend=backend)
        self.dist, self.deepspeed = dist, deepspeed
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.stage = ds.zero_stage
        # ZeRO-3 partitions ``model`` in place: keep a full copy for rollout and scoring first
        self.rollout_model = copy.deepcopy(model) if self.stage == 3 else model
        zero: dict = {"stage": ds.zero_stage}
        if ds.offload_optimizer:
            zero["offload_optimizer"] = {"device": "cpu"}
        if ds.offload_param:
            zero["offload_param"] = {"device": "cpu"}
        config = {
            "train_micro_batch_size_per_gpu": 1,  # unused: the recipe forms its own micro-batches
            "gradient_accumulation_steps": 1,
            "managed_gradient_accumulation": False,  # step() is the accumulation boundary
            "gradient_clipping": t.grad_clip,
            "zero_optimization": zero,
            "bf16": {"enabled": next(model.parameters()).dtype == torch.bfloat16},
            # torch's AdamW: the same update as LocalEngine, and no compiled DeepSpeed op
            # (ZeRO-Offload swaps in DeepSpeed's CPU Adam, which it builds on first use)
            "optimizer": {"type": "AdamW", "params": {"lr": t.lr, "betas": list(t.betas), "weight_decay": t.weight_decay,
                                                      "torch_adam": not ds.offload_optimizer}},
            "steps_per_print": 2**31 - 1,
        } | dict(ds.config)
        if self.stage == 0:  # DeepSpeed clips ZeRO-0 gradients without reporting the norm
            config["gradient_clipping"] = 0.0
        self.frozen = any(not p.requires_grad for p in model.parameters())  # LoRA: base weights neither updated nor saved
        self.ds, _, _, _ = deepspeed.initialize(model=model, model_parameters=trainable(model), config=config)
        self.module, self.train_module = self.ds.module, self.ds
        self.optimizer = torch_optimizer(self.ds.optimizer)
        self._device, self._norm = device, math.nan
        if self.stage == 0:  # ... so clip here, after its all-reduce, just before the optimizer step
            self.optimizer.register_step_pre_hook(lambda *_: self._clip(t.grad_clip))

    def zero_grad(self) -> None:
        self.ds.zero_grad()

    def backward(self, loss: torch.Tensor) -> None:
        # DeepSpeed averages gradients over ranks; the recipe's losses are already divided by
        # counts summed over all ranks, so the sum over ranks is wanted
        self.ds.backward(loss * self.world_size)

    def step(self) -> float:
        self.ds.step()
        norm = self._norm if self.stage == 0 else self.ds.get_global_grad_norm()
        return float(norm) if norm is not None else math.nan

    def _clip(self, max_norm: float) -> None:
        self._norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_norm))

    def all_sum(self, values: list[float]) -> list[float]:
        x = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        self.dist.all_reduce(x)
        return x.tolist()

    def all_max(self, n: int) -> int:
        x = torch.tensor([n], dtype=torch.int64, device=self._comm_device())
        self.dist.all_reduce(x, op=self.dist.ReduceOp.MAX)
        return int(x.item())

    def gather(self, obj) -> list:
        out = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        self.dist.barrier()

    def sync_rollout_model(self) -> None:
        """ZeRO-3: copy the gathered parameters into the full rollout copy, one tensor at a time."""
        if self.stage != 3:
            return
        dst = dict(self.rollout_model.named_parameters())
        for name, p in self.ds.module.named_parameters():
            with self.deepspeed.zero.GatheredParameters([p]), torch.no_grad():
                dst[name].copy_(p)

    def optimizer_state(self) -> dict:
        return {}  # in the ZeRO shards

    def save_shards(self, ckpt_dir: Path) -> None:
        """Every rank writes its optimizer (and ZeRO-3 parameter) partitions."""
        self.ds.save_checkpoint(str(ckpt_dir / "deepspeed"), tag="zero", save_latest=False, exclude_frozen_parameters=self.frozen)

    def load(self, ckpt_dir: Path, state: dict) -> None:
        if not (ckpt_dir / "deepspeed").is_dir():
            raise ValueError(f"{ckpt_dir} was written by a single process (no ZeRO shards): resume it without "
                             f"trainer.deepspeed, or start a new run from its weights (model.path={ckpt_dir})")
        self.ds.load_checkpoint(str(ckpt_dir / "deepspeed"), tag="zero", load_lr_scheduler_states=False,
                                load_module_strict=not self.frozen)
        self.sync_rollout_model()

    def _comm_device(self) -> torch.device:
        return self._device if self.dist.get_backend() == "nccl" else torch.device("cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trainable(model) -> list[torch.nn.Parameter]:
    """The parameters the optimizer holds: all of them, or with LoRA only the adapters'."""
    return [p for p in model.parameters() if p.requires_grad]


def make_engine(model, t: TrainerConfig | SFTTrainerConfig, device: torch.device):
    """AdamW with ``trainer``'s settings (RL or SFT), in this process or as a DeepSpeed ZeRO rank."""
    if t.deepspeed.enabled:
        return DeepSpeedEngine(model, t, device)
    adamw = torch.optim.AdamW(trainable(model), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    return LocalEngine(model, adamw, t.grad_clip)

