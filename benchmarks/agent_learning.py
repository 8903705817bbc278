"""A multi-turn agent on CPU: SFT warm start on the tools env's expert calls, then GRPO and ResRL
from it (3 seeds each, equal steps), success of every checkpoint on held-out and training tasks.

Env: the bundled warehouse tools env (``env=tools``), restricted to its two families that need
only ``get_stock`` and ``calculator`` (``stock_by_sku``: one call, then the answer; ``restock``:
a call, a calculation, the answer). The tool schemas in the system prompt are most of every
context; two tools instead of five cut a context from ~1350 to ~880 tiny-model tokens, which is
what made the run fit on a shared 2-core machine (``--families``/``--tools`` take the whole env
back). 30% of those tasks are held out (``eval_fraction``); both splits are evaluated, because
the tiny model's SFT memorises training tasks long before it learns to copy a SKU or a number
from the context (what a held-out task needs).

The warm start is two cosine SFT runs, the second from the first's end at a lower lr: after the
first (200 steps) the model had the call format but copied no SKU, and RL sampled no success from
it in 80 episodes; the second stage's model copies from its step ~225 on (held-out 0.167, training
tasks 0.50 greedy), where RL starts. docs/agent_learning_notes.md records the runs behind this.

Every stage runs the real CLIs as subprocesses (``python -m resrl_agents.sft | train | eval``),
``--jobs`` RL runs at a time, and is skipped when its output exists, so an interrupted study
continues where it stopped (a half-finished RL run resumes from its newest checkpoint). At the end
it writes a PNG of success vs RL step (mean ± std over seeds per algorithm, the SFT start at step
0; one panel per split) and a markdown section between ``<!-- agent-learning:start -->`` and
``<!-- agent-learning:end -->`` of ``--results`` (created when absent; the rest is kept).

    python benchmarks/agent_learning.py [--quick] [--out runs/agent_learning] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "resrl_agents" / "envs" / "tool_use" / "examples" / "warehouse_tasks.jsonl"
TOOLS_MODULE = "resrl_agents.envs.tool_use.examples.warehouse"
START, END = "<!-- agent-learning:start -->", "<!-- agent-learning:end -->"
DIAGNOSTICS = ("resrl/frac_groups_weighted", "resrl/frac_in_span", "resrl/degenerate_groups", "resrl/mean_neg_weight",
               "resrl/effective_rank")
PHASES = ("perf/rollout_s", "perf/score_s", "perf/update_s", "perf/step_s")
SPLITS = {"test": "held-out tasks", "train": "training tasks"}  # eval split -> its name in the outputs
Curves = dict[str, dict[int, dict[int, float]]]  # algo -> seed -> RL step -> success


@dataclass(frozen=True)
class Size:
    """Everything that sets the cost of the study (``--quick`` swaps in a tiny one)."""

    sft_steps: int = 200  # SFT optimizer steps (first cosine run)
    sft_lr: float = 6e-3  # its learning rate
    sft2_steps: int = 450  # steps of a second cosine run from the first one's end (0 = none)
    sft2_lr: float = 3e-3  # its learning rate
    sft_save_every: int = 75  # SFT checkpoint interval
    sft_start: int = 225  # the checkpoint (step of the last SFT stage) RL starts from
    sft_batch: int = 8  # conversations per SFT step
    sft_examples: int = 400  # expert episodes generated for SFT
    rl_steps: int = 30  # RL steps per run
    save_every: int = 10  # RL checkpoint (and eval point) interval
    group_size: int = 8  # G trajectories per task
    prompts: int = 2  # tasks (groups) per RL step
    max_new_tokens: int = 64  # per turn
    lr_grpo: float = 1e-4  # GRPO learning rate
    lr_resrl: float = 1.5e-4  # ResRL learning rate (its λ-scaled positives give smaller gradients)
    rank: int = 4  # ResRL's k (the tiny model has H = 128)
    eval_tasks: int = 48  # task draws per checkpoint and split (reset seeds 0..eval_tasks-1)
    eval_n: int = 1  # samples per task
    eval_temperature: float = 0.0  # 0 = greedy


QUICK = Size(sft_steps=2, sft2_steps=0, sft_save_every=1, sft_start=2, sft_batch=2, sft_examples=4, rl_steps=2,
             save_every=1, group_size=2, prompts=1, max_new_tokens=12, eval_tasks=2)


def generated_tasks(per_family: int, seed: int = 1) -> list[dict]:
    """More tasks of the bundled warehouse's families, over its catalog, from the example's own
    generator (distinct questions only: a held-out task never repeats a training one)."""
    import random

    from resrl_agents.envs.tool_use.examples.make_tasks import DATA_PATH, make_tasks

    catalog = json.loads(DATA_PATH.read_text(encoding="utf-8"))
    rows = make_tasks(catalog, random.Random(seed), per_family=per_family)
    unique = {r["question"]: r for r in rows}
    return list(unique.values())


def env_overrides(out: Path, families: list[str], tools: list[str], per_family: int = 0) -> list[str]:
    """Hydra overrides for the tools env on ``families`` (a tasks file written into ``out``: the
    bundled tasks, or ``per_family`` generated ones of each family)."""
    tasks = out / "tasks.jsonl"
    if not tasks.exists():
        rows = generated_tasks(per_family) if per_family else \
            [json.loads(line) for line in TASKS.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = [r for r in rows if r.get("family") in families]
        if not keep:
            raise SystemExit(f"--families {families}: no bundled warehouse task has these families")
        out.mkdir(parents=True, exist_ok=True)
        tasks.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    specs = ",".join(f"{TOOLS_MODULE}:{t}" for t in tools)
    return ["env=tools", f"env.kwargs.tools=[{specs}]", f"env.kwargs.tasks={tasks}", "env.kwargs.eval_fraction=0.3"]


def run_cli(module: str, args: list[str], log: Path) -> None:
    """``python -m module args`` with one torch thread, output to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + shlex.join([sys.executable, "-m", module, *args]) + "\n")
        f.flush()
        code = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, stdout=f,
                              stderr=subprocess.STDOUT).returncode
    if code:
        raise SystemExit(f"{module} failed (exit {code}); see {log}")


def ckpt(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:06d}"


def sft_stage(out: Path, size: Size, env: list[str], stage: int, init: Path | None) -> Path:
    """One SFT stage (skipped when its last checkpoint exists); its run folder."""
    steps, lr = (size.sft_steps, size.sft_lr) if stage == 1 else (size.sft2_steps, size.sft2_lr)
    run_dir = out / ("sft" if stage == 1 else f"sft{stage}")
    if not ckpt(run_dir, steps).exists():
        run_cli("resrl_agents.sft", env + [
            "model=tiny", *([f"model.path={init}"] if init else []), f"trainer.seed={stage - 1}",
            f"trainer.steps={steps}", f"trainer.lr={lr}", f"trainer.batch_size={size.sft_batch}",
            f"trainer.num_examples={size.sft_examples}", f"trainer.save_every={size.sft_save_every}",
            "trainer.keep_checkpoints=0", "trainer.num_threads=1", "trainer.progress=false", "trainer.tensorboard=false",
            f"trainer.output_dir={run_dir}"], out / "logs" / f"{run_dir.name}.log")
    return run_dir


def sft(out: Path, size: Size, env: list[str]) -> Path:
    """The warm start: SFT on the expert's calls (a cosine run), then optionally a second cosine
    run from its end (``sft2_steps``); the checkpoint ``sft_start`` of the last stage."""
    run_dir = sft_stage(out, size, env, 1, None)
    if size.sft2_steps:
        run_dir = sft_stage(out, size, env, 2, ckpt(run_dir, size.sft_steps))
    start = ckpt(run_dir, size.sft_start)
    if not start.exists():
        raise SystemExit(f"--sft-start {size.sft_start}: no checkpoint {start} (use a multiple of --sft-save-every)")
    return start


def rl(out: Path, size: Size, env: list[str], start: Path, algo: str, seed: int, overrides: list[str]) -> Path:
    """One RL run (skipped when its last checkpoint exists; resumed when it has some); ``overrides``
    come last (they win)."""
    run_dir = out / "rl" / f"{algo}_s{seed}"
    if ckpt(run_dir, size.rl_steps).exists():
        return run_dir
    lr = size.lr_resrl if algo == "resrl" else size.lr_grpo
    extra = [f"algo.rank={size.rank}"] if algo == "resrl" else []
    run_cli("resrl_agents.train", env + [
        f"algo={algo}", *extra, "model=tiny", f"model.path={start}", f"trainer.seed={seed}",
        f"trainer.steps={size.rl_steps}", f"trainer.lr={lr}", "trainer.warmup_steps=2",
        f"trainer.save_every={size.save_every}", "trainer.keep_checkpoints=0", "trainer.num_threads=1",
        "trainer.micro_batch_size=8", "trainer.progress=false", "trainer.tensorboard=false", "trainer.resume=true",
        f"rollout.group_size={size.group_size}", f"rollout.prompts_per_step={size.prompts}",
        f"rollout.max_new_tokens={size.max_new_tokens}", "rollout.drift_check_frac=0.05",
        f"trainer.output_dir={run_dir}", *overrides], out / "logs" / f"{algo}_s{seed}.log")
    return run_dir


def evaluate(out: Path, size: Size, env: list[str], name: str, checkpoints: list[Path], split: str) -> dict[str, float]:
    """Success of each checkpoint on ``split`` (one eval process, same task seeds for all); cached."""
    eval_dir = out / "eval" / f"{name}_{split}"
    report = eval_dir / "report.json"
    if not report.exists():
        run_cli("resrl_agents.eval", env + [f"env.eval_kwargs.split={split}",
            f"checkpoints=[{','.join(str(c) for c in checkpoints)}]", f"n={size.eval_n}",
            f"num_tasks={size.eval_tasks}", f"temperature={size.eval_temperature}", "top_p=1.0",
            f"max_new_tokens={size.max_new_tokens}", "max_context_tokens=2048", "num_threads=1", "plots=false",
            f"output_dir={eval_dir}"], out / "logs" / f"eval_{name}_{split}.log")
    runs = json.loads(report.read_text(encoding="utf-8"))["runs"]
    return {r["checkpoint"]: r["success"] for r in runs}


def run_one(out: Path, size: Size, env: list[str], start: Path, algo: str, seed: int,
            overrides: list[str]) -> dict[str, dict[int, float]]:
    """Train one (algo, seed) and evaluate the start and its checkpoints, per split in one eval
    process (the same task seeds for all); {split: {RL step (0 = the SFT start): success}}."""
    run_dir = rl(out, size, env, start, algo, seed, overrides)
    steps = list(range(size.save_every, size.rl_steps + 1, size.save_every))
    if steps[-1] != size.rl_steps:
        steps.append(size.rl_steps)
    curves = {}
    for split in SPLITS:
        success = evaluate(out, size, env, f"{algo}_s{seed}", [start] + [ckpt(run_dir, s) for s in steps], split)
        curves[split] = {0: success[str(start)], **{s: success[str(ckpt(run_dir, s))] for s in steps}}
    return curves


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mean_std(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def plot(by_split: dict[str, Curves], path: Path, ylabel: str) -> None:
    """Success vs RL step, one panel per split: per algorithm the seed mean and a ±std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(by_split), figsize=(5.5 * len(by_split), 4), squeeze=False)
    for ax, (split, curves) in zip(axes[0], by_split.items()):
        plot_panel(ax, curves, SPLITS[split], ylabel)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_panel(ax, curves: Curves, title: str, ylabel: str) -> None:
    for algo, by_seed in curves.items():
        steps = sorted(next(iter(by_seed.values())))
        ys = [[run[s] for run in by_seed.values()] for s in steps]
        mu = [statistics.fmean(y) for y in ys]
        sd = [statistics.stdev(y) if len(y) > 1 else 0.0 for y in ys]
        line, = ax.plot(steps, mu, marker="o", label=f"{algo} ({len(by_seed)} seeds)")
        ax.fill_between(steps, [m - s for m, s in zip(mu, sd)], [m + s for m, s in zip(mu, sd)],
                        color=line.get_color(), alpha=0.2)
    base = statistics.fmean(run[0] for by_seed in curves.values() for run in by_seed.values())
    ax.scatter([0], [base], color="black", zorder=5, label="SFT start")
    ax.set_xlabel("RL step")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)  # the whole range: a one-episode change should look like one
    ax.set_title(f"warehouse tools env, tiny model: {title}")
    ax.grid(alpha=0.3)
    ax.legend()


def run_stats(out: Path, algo: str, seeds: list[int]) -> dict[str, list[float]]:
    """Per seed: median phase times, mean ResRL diagnostics, training success first/last quarter."""
    stats: dict[str, list[float]] = {}
    for seed in seeds:
        rows = read_metrics(out / "rl" / f"{algo}_s{seed}")
        for key in PHASES + DIAGNOSTICS:
            vals = [r[key] for r in rows if r.get(key) is not None]  # None: no weighted group that step
            if vals:
                agg = statistics.median if key in PHASES else statistics.fmean
                stats.setdefault(key, []).append(agg(vals))
        stats.setdefault("weighted_steps", []).append(sum((r.get("resrl/frac_groups_weighted") or 0) > 0 for r in rows))
        q = max(1, len(rows) // 4)
        stats.setdefault("train_first", []).append(statistics.fmean(r["rollout/success"] for r in rows[:q]))
        stats.setdefault("train_last", []).append(statistics.fmean(r["rollout/success"] for r in rows[-q:]))
    return stats


ENV_NOTE = (
    "Env: the bundled warehouse tools env (`env=tools`, `resrl_agents/ToolUse-v0`) on its families {families}, "
    "with the tools {tools} in the prompt; 30% of those tasks are held out. Not ALFWorld: its bundled games "
    "are 23 train / 7 valid (held-out success moves in steps of 1/7), the TextWorld engine needed 34 s for 6 "
    "expert episodes on this machine, and a failing episode runs 50 turns into the context cap, where a tools "
    "episode ends in at most 6 turns. Not all five warehouse tools: the tool schemas are most of each context "
    "(~1350 tiny-model tokens with five, ~880 with two), and the update's cost grows with it.")


def verdict(curves: Curves, what: str, draws: int) -> list[str]:
    """One line per algorithm: last-minus-start change against its spread over seeds and against
    the binomial standard error of one evaluation of ``draws`` episodes at the start's success."""
    lines = []
    for algo, by_seed in curves.items():
        last = max(next(iter(by_seed.values())))
        delta = [run[last] - run[0] for run in by_seed.values()]
        sd = statistics.stdev(delta) if len(delta) > 1 else 0.0
        p0 = statistics.fmean(run[0] for run in by_seed.values())
        se = (p0 * (1 - p0) / draws) ** 0.5
        mean, noise = statistics.fmean(delta), max(sd, se)
        word = "rose" if mean > noise else "fell" if mean < -noise else "did not move beyond the noise"
        lines.append(f"- {algo}: success on {what} {word}: {mean:+.3f} (std {sd:.3f} over seeds); "
                     f"{sum(d > 0 for d in delta)} of {len(delta)} seeds ended above their start; one evaluation's "
                     f"standard error at the start is {se:.3f} (one episode = {1 / draws:.3f}).")
    return lines


def success_table(size: Size, curves: Curves, what: str) -> list[str]:
    """Markdown rows: per algorithm, success at every evaluated step (mean ± std over seeds)."""
    steps = sorted(next(iter(next(iter(curves.values())).values())))
    lines = [f"Success on {what}:", "", "| algorithm | lr | " + " | ".join(f"step {s}" for s in steps)
             + " | Δ last − start |", "|" + "---|" * (len(steps) + 3)]
    for algo, by_seed in curves.items():
        lr = size.lr_resrl if algo == "resrl" else size.lr_grpo
        cells = [mean_std([run[s] for run in by_seed.values()]) for s in steps]
        lines.append(f"| {algo} | {lr:g} | " + " | ".join(cells) + " | "
                     f"{mean_std([run[steps[-1]] - run[0] for run in by_seed.values()])} |")
    return lines + ["", *verdict(curves, what, size.eval_tasks * size.eval_n), ""]


def cost_line(out: Path, curves: Curves) -> str:
    """Where the study's time went, from the runs' own records (step times, eval wall times)."""
    sft_s = sum(sum(r["perf/step_s"] for r in read_metrics(d)) for d in sorted(out.glob("sft*")) if d.is_dir())
    rl_s = [sum(r["perf/step_s"] for r in read_metrics(out / "rl" / f"{a}_s{s}")) for a in curves for s in curves[a]]
    ev_s = [r["wall_s"] for d in sorted((out / "eval").iterdir())
            for r in json.loads((d / "report.json").read_text(encoding="utf-8"))["runs"]]
    return (f"Time (sums of logged step times; process start-up not included): SFT {sft_s / 60:.1f} min; "
            f"RL {sum(rl_s) / 60:.1f} min over {len(rl_s)} runs ({statistics.fmean(rl_s) / 60:.1f} min each); "
            f"eval {sum(ev_s) / 60:.1f} min over {len(ev_s)} checkpoint evaluations ({statistics.fmean(ev_s):.0f} s each).")


def section(cmd: str, size: Size, by_split: dict[str, Curves], env_note: str, out: Path, png: Path, results: Path,
            machine: str, notes: str) -> str:
    """The markdown written between the markers of ``results``."""
    curves = by_split["test"]
    seeds = sorted(next(iter(curves.values())))
    tables = [line for split, c in by_split.items() for line in success_table(size, c, SPLITS[split])]
    stats = {algo: run_stats(out, algo, seeds) for algo in curves}
    perf = ["| algorithm | rollout s | score s | update s | step s | train success first ¼ → last ¼ |",
            "|---|---|---|---|---|---|"]
    for algo, st in stats.items():
        perf.append(f"| {algo} | " + " | ".join(mean_std(st[k]) for k in PHASES)
                    + f" | {mean_std(st['train_first'])} → {mean_std(st['train_last'])} |")
    diag = [f"- `{k}`: " + (mean_std(stats["resrl"][k]) if k in stats["resrl"] else "n/a (no step had a weighted group)")
            for k in DIAGNOSTICS] if "resrl" in stats else []
    if diag:
        diag.append(f"- steps with at least one weighted group: {mean_std(stats['resrl']['weighted_steps'])} of "
                    f"{size.rl_steps} (`frac_in_span`, `mean_neg_weight` are means over those steps; the others over all steps)")
    rel = os.path.relpath(png, results.parent)
    return "\n".join([
        "## A multi-turn agent on CPU (tools env, tiny model): SFT warm start, then GRPO and ResRL", "",
        f"Command: `{cmd}`", "",
        f"Machine: {machine}", "", env_note, "",
        f"Evaluation: `python -m resrl_agents.eval`, {size.eval_tasks} task draws (reset seeds 0..{size.eval_tasks - 1}, "
        f"the same for every checkpoint) per split, n={size.eval_n}, temperature {size.eval_temperature:g}; mean ± std "
        f"over seeds {seeds}; step 0 is the checkpoint step_{size.sft_start:06d} of the last SFT stage, where every "
        "run starts.", "",
        *tables, f"![success vs RL step]({rel})", "",
        "Step time (median per run, mean ± std over seeds) and training-rollout success (sampled, T=1):", "", *perf, "",
        cost_line(out, curves), "",
        "ResRL diagnostics (mean over steps, mean ± std over seeds):", "", *(diag or ["- (no ResRL run)"]), "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in asdict(size).items()) + ".", *(["", notes.strip()] if notes else []),
    ])


def write_section(results: Path, text: str) -> None:
    """Replace the text between the markers of ``results`` (append them when absent)."""
    old = results.read_text(encoding="utf-8") if results.exists() else "# Results\n"
    block = f"{START}\n{text}\n{END}"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + block + "\n"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(new, encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny smoke size (seconds of compute per stage)")
    ap.add_argument("--out", default="runs/agent_learning", help="runs, evals and logs")
    ap.add_argument("--jobs", type=int, default=2, help="RL runs (with their evals) at once")
    ap.add_argument("--algos", default="grpo,resrl")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rl-overrides", default="", help="more Hydra overrides for every RL run, space-separated "
                    "(e.g. 'algo.lam=1.0')")
    ap.add_argument("--families", default="stock_by_sku,restock", help="warehouse task families")
    ap.add_argument("--tools", default="get_stock,calculator", help="warehouse tools the agent sees")
    ap.add_argument("--tasks-per-family", type=int, default=0,
                    help="generate this many tasks per family over the bundled catalog (0 = the bundled 60)")
    ap.add_argument("--results", default="docs/results.md")
    ap.add_argument("--png", default="docs/agent_learning.png")
    ap.add_argument("--notes", default=None, help="markdown (what was tried, by hand) put at the end of the section")
    for f in Size.__dataclass_fields__.values():
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size = QUICK if args.quick else Size()
    size = replace(size, **{k: v for k, v in vars(args).items() if k in Size.__dataclass_fields__ and v is not None})
    out, algos, seeds = Path(args.out), args.algos.split(","), [int(s) for s in args.seeds.split(",")]
    env = env_overrides(out, args.families.split(","), args.tools.split(","), args.tasks_per_family)
    load0 = os.getloadavg()[0]
    start = sft(out, size, env)
    jobs = [(a, s) for a in algos for s in seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(lambda job: run_one(out, size, env, start, *job, args.rl_overrides.split()), jobs))
    by_split: dict[str, Curves] = {split: {} for split in SPLITS}
    for (algo, seed), curves in zip(jobs, done):
        for split, curve in curves.items():
            by_split[split].setdefault(algo, {})[seed] = curve
            print(f"{algo} seed {seed} {split}: " + "  ".join(f"{s}:{v:.3f}" for s, v in curve.items()), flush=True)
    machine = (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared with other "
               f"jobs during the run (1-min load average {load0:.1f} when this invocation started, "
               f"{os.getloadavg()[0]:.1f} when it wrote this); torch 1 thread per process, {args.jobs} runs at a time")
    cmd = "python benchmarks/agent_learning.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    plot(by_split, Path(args.png), "success (greedy)" if size.eval_temperature == 0 else
         f"success (Avg@{size.eval_n}, T={size.eval_temperature:g})")
    note = ENV_NOTE.format(families=args.families, tools=args.tools)
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else ""
    write_section(Path(args.results), section(cmd.strip(), size, by_split, note, out, Path(args.png),
                                              Path(args.results), machine, notes))
    print(f"wrote {args.png} and the agent-learning section of {args.results}")


if __name__ == "__main__":
    main()
