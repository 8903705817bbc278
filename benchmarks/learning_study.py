"""Learning study: base, GRPO, NSR, W-REINFORCE and ResRL (plus variants) from one SFT warm start.

The task is worked +/- chains (``env.kwargs.source=chain``): "What is 7 + 5 - 3 + 8?" answered
"7+5=12\\n12-3=9\\n9+8=17\\n#### 17", ~30 policy tokens, so a wrong answer leaves the right one at
its first wrong digit, mid-response, where ResRL's token weights can act. One command runs:

1. an SFT warm start on expert chains (once, shared by every run);
2. for each algorithm and seed, ``python -m resrl_agents.train`` from it for the same number of
   steps, with validation every ``eval_every`` steps (``val/*`` in ``metrics.jsonl``);
3. a final held-out eval per run with ``python -m resrl_agents.eval``: greedy Avg@1, and n sampled
   answers per problem for Avg@16 and unbiased Pass@k, k = 1..n;
4. a table (mean ± std over seeds), a Pass@k PNG and a validation-curve PNG, written into the
   results file between markers (a rerun replaces that section).

Every step is skipped when its output exists, so an interrupted study resumes where it stopped
(a half-finished training run is started again). ``base`` is the warm start evaluated as is.
ResRL variants are override sets (``RESRL_VARIANTS`` or ``--variant``), e.g.
``--variant "resrl_own:algo.hidden_position=own"``.

    python benchmarks/learning_study.py [--size tiny|default] [--seeds 3] [--steps N] [--jobs 1]
        [--out runs/learning_study] [--algos all|base,grpo,...] [--variant NAME:OVERRIDES ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from resrl_agents.eval.metrics import pass_at_k  # noqa: E402

BEGIN, END = "<!-- learning_study:begin -->", "<!-- learning_study:end -->"
ALGOS: dict[str, list[str]] = {  # name -> train overrides; base gets no RL
    "base": [],
    "grpo": ["algo=grpo"],
    "nsr": ["algo=nsr"],
    "w_reinforce": ["algo=w_reinforce", "algo.lam=0.1"],
    "resrl": ["algo=resrl"],
}
RESRL_VARIANTS: dict[str, list[str]] = {  # added to algo=resrl (whose defaults: gate=off_span, hidden_position=own)
    "resrl_predicting": ["algo.hidden_position=predicting"],
    "resrl_paper_gate": ["algo.gate=paper", "algo.hidden_position=predicting"],
    "resrl_lam1": ["algo.lam=1.0"],  # positives at their full advantage (the paper: λ = 0.1)
}


@dataclass(frozen=True)
class Size:
    sft_steps: int  # SFT optimizer steps (the length of its cosine schedule)
    sft_start: int  # the SFT checkpoint RL starts from (mid-schedule: neither 0 nor 1)
    sft_examples: int  # expert episodes SFT trains on
    steps: int  # RL steps per run
    prompts: int  # rollout.prompts_per_step
    group: int  # rollout.group_size
    eval_every: int  # validation every N RL steps
    val_tasks: int  # validation problems
    val_n: int  # validation samples per problem
    problems: int  # held-out problems of the final eval
    n: int  # final-eval samples per problem (Pass@k for k = 1..n)
    rank: int  # ResRL's subspace rank (small next to the tiny model's H = 128, as k = 64 of 2560 in the paper)


SIZES = {
    "tiny": Size(sft_steps=20, sft_start=20, sft_examples=64, steps=2, prompts=2, group=4, eval_every=1, val_tasks=4, val_n=2,
                 problems=4, n=4, rank=4),
    "default": Size(sft_steps=800, sft_start=400, sft_examples=2000, steps=100, prompts=8, group=8, eval_every=20, val_tasks=64,
                    val_n=8, problems=100, n=64, rank=4),
}
TASK = ["env=math", "env.kwargs.source=chain", "env.kwargs.difficulty=1", "model=tiny"]
MAX_NEW_TOKENS = 48  # chain answers are 25-32 tokens with <|im_end|>


def cli(module: str, overrides: list[str], log: Path) -> None:
    """Run ``python -m module overrides`` with this checkout on the path; its output goes to ``log``."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as f:
        res = subprocess.run([sys.executable, "-m", module, *overrides], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    if res.returncode:
        raise RuntimeError(f"{module} failed (exit {res.returncode}); see {log}")


def warm_start(out: Path, size: Size, lr: float) -> Path:
    """The shared SFT checkpoint (trained once). The chain task's SFT accuracy jumps from ~0 to
    ~1 within a few hundred steps, so RL starts from a checkpoint inside that jump."""
    ckpt = out / "sft" / "checkpoints" / f"step_{size.sft_start:06d}"
    if not (ckpt / "config.json").exists():
        shutil.rmtree(out / "sft", ignore_errors=True)
        (out / "sft").mkdir(parents=True)
        cli("resrl_agents.sft", TASK + [f"trainer.steps={size.sft_steps}", f"trainer.num_examples={size.sft_examples}",
                                        f"trainer.lr={lr}", "trainer.batch_size=32", f"trainer.save_every={size.sft_start}",
                                        "trainer.keep_checkpoints=0",
                                        "trainer.num_threads=1", "trainer.progress=false", f"trainer.output_dir={out / 'sft'}"],
            out / "sft.log")
    return ckpt


def train_run(run: Path, overrides: list[str], sft: Path, size: Size, seed: int, lr: float) -> Path:
    """One RL run from the warm start; returns its final checkpoint."""
    ckpt = run / "checkpoints" / f"step_{size.steps:06d}"
    if (ckpt / "config.json").exists():
        return ckpt
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cli("resrl_agents.train", TASK + overrides + [
        f"model.path={sft}", f"trainer.seed={seed}", f"trainer.steps={size.steps}", f"trainer.lr={lr}",
        "trainer.warmup_steps=5", f"trainer.save_every={size.steps}", "trainer.keep_checkpoints=1",
        "trainer.micro_batch_size=64", "trainer.num_threads=1", "trainer.progress=false",
        f"rollout.prompts_per_step={size.prompts}", f"rollout.group_size={size.group}",
        f"rollout.max_new_tokens={MAX_NEW_TOKENS}", "rollout.max_context_tokens=256", "rollout.drift_check_frac=0.05",
        f"trainer.eval_every={size.eval_every}", f"trainer.eval.num_tasks={size.val_tasks}", f"trainer.eval.n={size.val_n}",
        f"trainer.output_dir={run}"], run / "train.log")
    return ckpt


def final_eval(run: Path, ckpt: Path, size: Size, seed: int, started: float) -> dict:
    """Greedy Avg@1, Avg@16 (first 16 samples per problem) and Pass@k, k = 1..n, on held-out problems;
    ``wall_s``: the run's time since ``started`` (training included)."""
    result = run / "final_eval.json"
    if result.exists():
        saved = json.loads(result.read_text())
        if (saved["problems"], saved["n"]) == (size.problems, size.n):  # else evaluate again, at the new size
            return saved
    common = TASK + [f"model.path={ckpt}", f"num_tasks={size.problems}", f"seed={seed}", "top_p=1.0",
                     f"max_new_tokens={MAX_NEW_TOKENS}", "max_context_tokens=256", "batch_size=512", "num_threads=1",
                     "plots=false"]
    cli("resrl_agents.eval", common + ["n=1", "temperature=0", "save_episodes=false", f"output_dir={run / 'eval_greedy'}"],
        run / "eval_greedy.log")
    cli("resrl_agents.eval", common + [f"n={size.n}", "temperature=1.0", f"output_dir={run / 'eval_sampled'}"],
        run / "eval_sampled.log")
    greedy = json.loads((run / "eval_greedy" / "report.json").read_text())["runs"][0]
    report = json.loads((run / "eval_sampled" / "report.json").read_text())["runs"][0]
    episodes = [json.loads(x) for x in next((run / "eval_sampled").glob("episodes_*.jsonl")).read_text().splitlines()]
    m = min(16, size.n)
    first: dict[int, list[bool]] = {}
    for e in episodes:  # the runner writes a problem's n samples in draw order
        first.setdefault(e["task"], []).append(bool(e["won"]))
    out = {"problems": size.problems, "n": size.n, "avg1_greedy": greedy["avg_at_n"],
           f"avg{m}": float(np.mean([np.mean(w[:m]) for w in first.values()])),
           "pass": {k: float(np.mean([pass_at_k(t["n"], t["successes"], k) for t in report["tasks"]]))
                    for k in range(1, size.n + 1)},
           "wall_s": time.perf_counter() - started}
    shutil.rmtree(run / "eval_sampled")  # the episodes are large; the summary above is what the study needs
    result.write_text(json.dumps(out))
    return out


def diagnostics(run: Path) -> dict:
    """Mean over training steps of every ``resrl/*`` key, and the validation curve (``val``)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    keys = sorted({k for r in rows for k in r if k.startswith("resrl/")})
    out = {k: float(np.nanmean([r[k] if r.get(k) is not None else np.nan for r in rows if k in r])) for k in keys}
    out["val"] = [(r["step"], r["val/avg@1_greedy"], r[next(k for k in r if k.startswith("val/avg@") and "greedy" not in k)])
                  for r in rows if "val/avg@1_greedy" in r]
    return out


def one_run(out: Path, name: str, overrides: list[str], sft: Path, size: Size, seed: int, lr: float) -> dict:
    run = out / "runs" / name / f"seed{seed}"
    tic = time.perf_counter()
    if name == "base":
        run.mkdir(parents=True, exist_ok=True)
        ckpt = sft
    else:
        ckpt = train_run(run, overrides, sft, size, seed, lr)
    res = final_eval(run, ckpt, size, seed, tic) | {"diag": diagnostics(run)}
    res["pass"] = {int(k): p for k, p in res["pass"].items()}  # json keys are strings
    print(f"{name} seed {seed}: greedy {res['avg1_greedy']:.3f}, pass@1 {res['pass'][1]:.3f} "
          f"[{time.perf_counter() - tic:.0f}s]", flush=True)
    return res


# ---------------------------------------------------------------------------------------------
# report


def mean_std(xs: list[float]) -> str:
    return f"{np.mean(xs):.3f} ± {np.std(xs):.3f}" if xs else "–"


def table(results: dict[str, list[dict]], n: int) -> str:
    """Markdown: one row per algorithm, mean ± std over seeds."""
    m = min(16, n)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    head = ["algorithm", "seeds", "Avg@1 (greedy)", f"Avg@{m}"] + [f"Pass@{k}" for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, runs in results.items():
        cells = [name, str(len(runs)), mean_std([r["avg1_greedy"] for r in runs]), mean_std([r[f"avg{m}"] for r in runs])]
        cells += [mean_std([r["pass"][k] for r in runs]) for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def diag_table(results: dict[str, list[dict]]) -> str:
    """Markdown: ``resrl/*`` diagnostics (mean over steps, then mean ± std over seeds)."""
    keys = sorted({k for runs in results.values() for r in runs for k in r["diag"] if k.startswith("resrl/")})
    rows = [(name, runs) for name, runs in results.items() if any(k in r["diag"] for r in runs for k in keys)]
    if not rows:
        return "(no ResRL runs)"
    lines = ["| algorithm | " + " | ".join(f"`{k}`" for k in keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, runs in rows:
        lines.append(f"| {name} | " + " | ".join(mean_std([r["diag"][k] for r in runs if k in r["diag"]]) for k in keys) + " |")
    return "\n".join(lines)


def plots(results: dict[str, list[dict]], n: int, png_passk: Path, png_val: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.arange(1, n + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in results.items():
        curves = np.array([[r["pass"][k] for k in ks] for r in runs])  # (seeds, n)
        mu, sd = curves.mean(0), curves.std(0)
        ax.plot(ks, mu, label=name)
        ax.fill_between(ks, mu - sd, mu + sd, alpha=0.2)
    ax.set(xscale="log", xlabel="k", ylabel="Pass@k (held out)", title="Pass@k, mean ± std over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_passk, dpi=120)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, runs in results.items():
        curves = [r["diag"].get("val") for r in runs if r["diag"].get("val")]
        if not curves:
            continue
        steps = [s for s, _, _ in curves[0]]
        for i, ax in enumerate(axes):
            ys = np.array([[p[i + 1] for p in c] for c in curves if len(c) == len(steps)])  # (seeds, points)
            ax.plot(steps, ys.mean(0), marker="o", label=name)
            ax.fill_between(steps, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2)
    axes[0].set(xlabel="RL step", ylabel="val/avg@1_greedy", title="greedy (validation)")
    axes[1].set(xlabel="RL step", ylabel="val/avg@n", title="sampled (validation)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(png_val, dpi=120)
    plt.close("all")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0]  # wall times on a shared machine depend on it
    return f"{cpu}, {os.cpu_count()} cores visible, load average {load:.1f} at the end, Python {platform.python_version()}"


def write_results(path: Path, section: str) -> None:
    """Put ``section`` between the markers of ``path`` (replacing an earlier one), or append it."""
    text = path.read_text() if path.exists() else "# Results\n"
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def report(results: dict[str, list[dict]], args, size: Size, wall_s: float) -> None:
    path = Path(args.results)
    png_passk, png_val = path.with_name("learning_study_pass_at_k.png"), path.with_name("learning_study_validation.png")
    plots(results, size.n, png_passk, png_val)
    command = "python benchmarks/learning_study.py " + " ".join(sys.argv[1:])
    section = "\n".join([
        f"## Learning study ({args.size} size)", "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}; the runs took {sum(r['wall_s'] for rs in results.values() for r in rs) / 60:.1f} min "
        f"of wall time in all (overlapping with --jobs > 1), this invocation {wall_s / 60:.1f} min.  ",
        f"Task: worked +/- chains (`env.kwargs.source=chain`, difficulty 1), tiny model; SFT warm start "
        f"step {size.sft_start} of a {size.sft_steps}-step run; RL {size.steps} steps x {size.prompts} prompts x {size.group} samples, lr {args.lr:g}, "
        f"ResRL rank {size.rank}; final eval on {size.problems} held-out problems, {size.n} samples each (T=1), "
        f"seeds {args.seeds}." + (" The tiny size is a smoke run of the pipeline: its numbers say nothing about "
                                  "the algorithms." if args.size == "tiny" else ""), "",
        table(results, size.n), "", "ResRL diagnostics (mean over steps):", "", diag_table(results), "",
        f"![Pass@k]({png_passk.name})", "", f"![validation curves]({png_val.name})",
    ])
    write_results(path, section)
    print(section)


# ---------------------------------------------------------------------------------------------
# main


def algorithms(names: list[str], variants: list[str], size: Size) -> dict[str, list[str]]:
    """name -> train overrides, in table order. ``all`` = every algorithm and ResRL variant; else the
    names given (a ``RESRL_VARIANTS`` entry by its name) plus every ``--variant``. ResRL and its
    variants get the study's ``algo.rank``."""
    given = {}
    for v in variants:
        name, sep, rest = v.partition(":")
        if not sep or not name or not rest.split():
            raise SystemExit(f"--variant {v!r}: expected NAME:OVERRIDE [OVERRIDE ...], e.g. 'resrl_own:algo.hidden_position=own'")
        given[name] = rest.split()
    extra = RESRL_VARIANTS | given
    names = list(ALGOS) + list(extra) if names == ["all"] else names + [n for n in given if n not in names]
    unknown = [a for a in names if a not in ALGOS and a not in extra]
    if unknown:
        raise SystemExit(f"--algos: unknown {unknown}; known: {sorted(ALGOS) + sorted(extra)}")
    out = {a: list(ALGOS[a]) if a in ALGOS else ["algo=resrl", *extra[a]] for a in names}
    return {a: o + [f"algo.rank={size.rank}"] if "algo=resrl" in o else o for a, o in out.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per algorithm (0, 1, ...)")
    ap.add_argument("--steps", type=int, default=None, help="RL steps per run (default: the size's)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one CPU thread each)")
    ap.add_argument("--out", default="runs/learning_study", help="run folders (resumable)")
    ap.add_argument("--algos", default="all", help="comma-separated names, or all (every algorithm and ResRL variant)")
    ap.add_argument("--variant", action="append", default=[], help="NAME:OVERRIDES, a ResRL variant (repeatable)")
    ap.add_argument("--problems", type=int, default=None, help="held-out problems of the final eval")
    ap.add_argument("--n", type=int, default=None, help="final-eval samples per problem (Pass@k for k = 1..n)")
    ap.add_argument("--lr", type=float, default=1e-4, help="RL learning rate (every algorithm)")
    ap.add_argument("--sft-lr", type=float, default=3e-3)
    ap.add_argument("--results", default=str(REPO / "docs" / "results.md"), help="markdown file to write the section into")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--seeds, --jobs and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size = SIZES[args.size]
    size = replace(size, **{k: v for k, v in (("steps", args.steps), ("problems", args.problems), ("n", args.n)) if v is not None})
    out = Path(args.out)
    algos = algorithms(args.algos.split(","), args.variant, size)
    tic = time.perf_counter()
    sft = warm_start(out, size, args.sft_lr)
    plan = [(name, seed) for name in algos for seed in range(args.seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda p: one_run(out, p[0], algos[p[0]], sft, size, p[1], args.lr), plan))
    results: dict[str, list[dict]] = {name: [] for name in algos}
    for (name, _), res in zip(plan, done):
        results[name].append(res)
    report(results, args, size, time.perf_counter() - tic)


if __name__ == "__main__":
    main()
