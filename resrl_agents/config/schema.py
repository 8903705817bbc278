"""Structured (dataclass) schemas of the Hydra config groups. One line of doc per field.

Hydra validates every override against these: a misspelled key or a wrong type is an error
naming the key. Defaults live here and in the YAML files of each group, never in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from resrl_agents.config.errors import ConfigError


@dataclass
class EnvConfig:
    name: str = "math"  # short name used in metrics and run names
    id: str = "resrl_agents/Math-v0"  # Gymnasium id passed to gymnasium.make
    kwargs: dict[str, Any] = field(default_factory=dict)  # constructor arguments for training
    eval_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides for evaluation


@dataclass
class LoraConfig:
    r: int = 0  # LoRA rank (0 = off: every weight trains); > 0 trains only adapters, through PEFT
    alpha: float = 16.0  # LoRA alpha: the adapters add (alpha / r) * B @ A to each adapted weight
    dropout: float = 0.0  # dropout on the adapters' input in update forwards (0 keeps the first PPO ratio 1)
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])  # module names to adapt; all-linear = every linear layer but the LM head


@dataclass
class ModelConfig:
    name: str = "tiny"  # tiny | smollm2 | hf
    path: Optional[str] = None  # HF hub id or local dir (name=hf, or to resume from a checkpoint)
    dtype: str = "float32"  # float32 | bfloat16 | float16
    seed: int = 0  # seed of the tiny model's weights and tokenizer
    hidden_size: int = 128  # tiny model only
    num_layers: int = 2  # tiny model only
    num_heads: int = 4  # tiny model only
    num_kv_heads: int = 2  # tiny model only
    intermediate_size: int = 384  # tiny model only
    vocab_size: int = 2048  # tiny model's BPE vocabulary size
    max_position: int = 4096  # tiny model's context length
    cache_dir: Optional[str] = None  # where built/converted models are cached (default ~/.cache/resrl_agents)
    gradient_checkpointing: bool = False  # trade compute for activation memory
    lora: LoraConfig = field(default_factory=LoraConfig)  # RL training only (resrl_agents.train)
    tool_format: str = "auto"  # tool calls in the model's text: auto (the chat template's) | hermes | llama3_json | mistral | pythonic | json


@dataclass
class AlgoConfig:
    name: str = "grpo"  # label for logs
    estimator: str = "grpo"  # grpo | w_reinforce | nsr | psr (see trainers/advantages.py)
    norm_std: bool = True  # divide group-centred rewards by their std (False = Dr.GRPO)
    lam: float = 0.1  # λ on positive advantages (W-REINFORCE, ResRL)
    clip_low: float = 0.2  # PPO ε_low
    clip_high: float = 0.2  # PPO ε_high (DAPO clip-higher: 0.28)
    dual_clip: Optional[float] = 3.0  # dual-clip c for negative advantages; null disables
    kl_coef: float = 0.0  # KL-to-reference coefficient (0 = no reference model)
    kl_estimator: str = "k3"  # k1 | k2 | k3
    entropy_coef: float = 0.0  # entropy bonus coefficient
    agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, refill
    max_refill_rounds: int = 3  # extra rollout rounds dynamic sampling may spend per step
    overlong_buffer: int = 0  # DAPO soft overlong punishment buffer in tokens (0 = off)
    overlong_penalty: float = 1.0  # DAPO penalty at the hard limit
    length_scale: bool = False  # ResRL code's length-scaled reward for positives
    length_scale_start: float = 0.875  # ramp starts at this fraction of the response budget
    length_scale_min: float = 0.7  # reward factor at the budget
    resrl: bool = False  # weight negative tokens by projection residual
    rank: int = 64  # k: rank of the positive subspace (at most; see rank_tol)
    rank_tol: float = 1e-3  # drop singular directions with σ_i < rank_tol·σ_1 (duplicates, float noise)
    max_pos_tokens: int = 4096  # m: positive tokens sampled per group
    min_pos_tokens: int = 4  # fewer positive tokens than this: group falls back to weight 1
    w_min: float = 0.1  # smallest negative-token weight
    q_lo: float = 0.2  # lower quantile of residual energy
    q_hi: float = 0.8  # upper quantile of residual energy
    niter: int = 4  # power iterations of the randomized SVD
    hidden_layer: int = -2  # index into HF hidden_states (-2 = penultimate layer)
    residual_norm: str = "normalized"  # normalized: |r|²/|h|² (paper) | hidden_size: |r|²/H (code)
    gate: str = "off_span"  # off_span: in-span negatives get w_min, quantiles over the rest | paper: over all
    span_tol: float = 1e-6  # in span: |r|² or the distance to a positive token's state <= span_tol·|h - mu|² (float noise)
    hidden_position: str = "own"  # own: the state at t weighs token t (best in docs/results.md) | predicting: t-1 (released code)
    batch_groups: str = "auto"  # one batched SVD for all groups of a step (rollout states): auto = CUDA only | on | off
    success: str = "won"  # who is positive (all estimators, ResRL): won = the env's info["won"] | reward: r > 0


@dataclass
class RolloutConfig:
    backend: str = "hf"  # hf (the trained model) | vllm (in-process engine, weights synced after each update)
    vllm_gpu_memory_utilization: float = 0.3  # vllm: its share of the GPU (the trainer keeps the rest)
    env_workers: int = 0  # >0: envs live in this many worker processes and step in parallel
    group_size: int = 8  # G trajectories per task
    prompts_per_step: int = 4  # tasks (groups) per training step
    max_new_tokens: int = 64  # per turn
    max_context_tokens: int = 2048  # episode truncated when its sequence would exceed this
    temperature: float = 1.0  # sampling temperature (training)
    top_p: float = 1.0  # nucleus sampling
    history: str = "full"  # full | window:k (see rollout/agent_loop.py)
    drift_check_frac: float = 0.25  # fraction of trajectories re-rendered to check token drift
    drift_max_rate: float = 0.0  # fail the run when the drift mismatch rate exceeds this


@dataclass
class DeepSpeedConfig:
    enabled: bool = False  # data parallel over the launcher's ranks (torchrun / deepspeed), groups split across ranks
    zero_stage: int = 2  # 0 plain DP | 1 + optimizer states sharded | 2 + gradients | 3 + parameters
    offload_optimizer: bool = False  # ZeRO-Offload: optimizer states and step on the CPU (DeepSpeed's cpu_adam op)
    offload_param: bool = False  # ZeRO-3: parameters kept on the CPU between uses
    backend: str = "auto"  # torch.distributed backend: auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    config: dict[str, Any] = field(default_factory=dict)  # raw DeepSpeed config entries, merged over the generated ones


@dataclass
class ValidationConfig:
    num_tasks: int = 64  # held-out tasks (env.kwargs updated by env.eval_kwargs); task j is reset with seed `seed + j`
    greedy: bool = True  # one greedy (T=0) episode per task: val/avg@1_greedy
    n: int = 8  # sampled episodes per task at `temperature` (0 = greedy only): val/avg@<n>, val/pass@<k>
    ks: list[int] = field(default_factory=list)  # k of the logged val/pass@<k>, each <= n (empty = 1, 2, 4, ..., n)
    temperature: float = 1.0  # sampling temperature of the n samples
    top_p: float = 1.0  # nucleus sampling of the n samples
    seed: int = 0  # first task seed and sampling seed (the same tasks and draws at every validation)
    batch_size: int = 256  # episodes per rollout call


@dataclass
class TrainerConfig:
    steps: int = 20  # training steps (one rollout batch each)
    lr: float = 1e-6  # AdamW learning rate
    weight_decay: float = 0.1  # AdamW weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    warmup_steps: int = 10  # linear LR warm-up, then constant
    grad_clip: float = 1.0  # max global grad norm
    ppo_epochs: int = 1  # passes over each rollout batch
    mini_batch_groups: Optional[int] = None  # groups per optimizer step (null = whole batch; under DeepSpeed: per rank)
    micro_batch_size: int = 8  # rows per forward/backward (gradient accumulation)
    micro_batch_tokens: Optional[int] = None  # also cap rows x longest row per forward (null = rows only)
    rescore: str = "auto"  # old log-probs / ResRL states: auto (from the rollout when it sampled with the trained weights) | always (a no-grad scoring pass) | never
    skip_empty_updates: bool = True  # no optimizer step when every advantage is 0 (and no KL/entropy term): AdamW would still move the weights by momentum and weight decay
    share_prefix: bool = True  # training forwards run a group's shared prompt once, rows of one group per forward (off under model.gradient_checkpointing)
    seed: int = 0  # seeds rollouts, sampling and torch
    device: str = "auto"  # auto | cpu | cuda
    num_threads: Optional[int] = None  # torch intra-op threads (null = torch default)
    output_dir: str = "runs/default"  # metrics, TensorBoard logs and checkpoints
    save_every: int = 10  # checkpoint every N steps (and at the end)
    inspect_every: int = 0  # ResRL: keep every Nth step's groups and weights for `python -m resrl_agents.inspect` (0 = off)
    keep_checkpoints: int = 2  # newest checkpoints kept
    resume: bool = False  # continue from the newest checkpoint in output_dir
    export_merged: bool = False  # LoRA: every checkpoint also gets merged/, a full HF folder with the adapters merged in
    tensorboard: bool = True  # write TensorBoard event files
    wandb: bool = False  # log to Weights & Biases (needs the wandb extra)
    progress: bool = True  # rich progress bar
    eval_every: int = 0  # validate on the held-out split every N steps, before the first and after the last (0 = off)
    eval: ValidationConfig = field(default_factory=ValidationConfig)  # what validation runs (trainer.eval_every)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"trainer.steps={self.steps}: a run trains for at least 1 step")


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class SFTTrainerConfig:
    data: Optional[str] = None  # jsonl of {"messages": [...]}; null = expert episodes of `env`
    num_examples: int = 2000  # expert episodes to generate when data is null
    epochs: int = 1  # passes over the examples (ignored when steps > 0)
    steps: int = 300  # optimizer steps (0 = run `epochs` epochs)
    batch_size: int = 16  # conversations per optimizer step
    lr: float = 1e-3  # AdamW learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 10  # linear LR warm-up, then cosine decay to 10%
    grad_clip: float = 1.0  # max global grad norm
    seed: int = 0  # data order and torch seed
    device: str = "auto"  # auto | cpu | cuda
    num_threads: Optional[int] = None  # torch intra-op threads
    output_dir: str = "runs/sft"  # metrics and checkpoints
    save_every: int = 0  # checkpoint every N steps (0 = only at the end)
    keep_checkpoints: int = 1  # newest checkpoints kept (0 = all)
    tensorboard: bool = True  # write TensorBoard event files
    progress: bool = True  # rich progress bar
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)  # each rank takes batch_size / ranks rows

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"trainer.steps={self.steps}: give a number of steps, or 0 to run trainer.epochs epochs")


@dataclass
class SFTConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: SFTTrainerConfig = field(default_factory=SFTTrainerConfig)


def register_configs() -> None:
    """Store the schemas so YAML files in each group can extend them (``defaults: [schema]``)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sft_schema", node=SFTConfig)
    cs.store(group="sft_trainer", name="schema", node=SFTTrainerConfig)
    cs.store(group="env", name="schema", node=EnvConfig)
    cs.store(group="algo", name="schema", node=AlgoConfig)
    cs.store(group="model", name="schema", node=ModelConfig)
    cs.store(group="rollout", name="schema", node=RolloutConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
