"""What ResRL did at one step: every response of every group with its tokens coloured by weight, in
the terminal (rich) and as one self-contained HTML file, plus histograms of the negatives' weights
and of residual energy for negatives vs positives (PNG). Reads ``<run>/inspect/step_<N>.json.gz``,
written by the trainer when ``trainer.inspect_every`` > 0.

Colours: a negative token runs from green (w_min: left alone, it looks like correct reasoning) to
red (weight 1: pushed down in full); in-span negatives (on a positive's state) are underlined;
positive tokens (weight λ) are blue.
"""

from __future__ import annotations

import gzip
import html
import json
import math
from pathlib import Path

from rich.console import Console
from rich.text import Text

GREEN, RED, BLUE = (46, 160, 67), (215, 58, 73), (56, 132, 255)


def load_step(run_dir: str | Path, step: int | None = None) -> dict:
    """The kept record of ``step`` (the newest kept step when None)."""
    folder = Path(run_dir) / "inspect"
    files = sorted(folder.glob("step_*.json.gz"))
    if not files:
        raise FileNotFoundError(f"no inspected steps in {folder}: train with trainer.inspect_every=N (ResRL runs)")
    if step is None:
        path = files[-1]
    else:
        path = folder / f"step_{step:06d}.json.gz"
        if not path.exists():
            kept = ", ".join(str(int(f.name[5:11])) for f in files)
            raise FileNotFoundError(f"step {step} was not kept in {folder}; kept steps: {kept}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def token_colour(weight: float, success: bool, w_min: float) -> tuple[int, int, int]:
    """Blue for positives; green (w_min) to red (1) for negatives."""
    if success:
        return BLUE
    s = min(max((weight - w_min) / max(1.0 - w_min, 1e-9), 0.0), 1.0)
    return tuple(round(g + s * (r - g)) for g, r in zip(GREEN, RED))


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def _policy_tokens(row: dict):
    """(token, weight, residual, in_span) of a row's policy tokens, in order."""
    for seg in row["segments"]:
        if "tokens" in seg:
            yield from zip(seg["tokens"], seg["weight"], seg["residual"], seg["in_span"])


def _group_header(g: dict) -> str:
    if not g["weighted"]:
        return f"group {g['group_id']} · not weighted ({g['reason']})"
    gate = "degenerate (midpoint)" if g["degenerate"] else "gated"
    return f"group {g['group_id']} · rank {g['rank']} · in span {g['n_in_span']}/{g['n_neg']} · {gate}"


def _context_tail(g: dict, lines: int) -> str:
    """The last non-empty lines of the group's first context (the task, not the system prompt)."""
    first = next((s["context"] for s in g["rows"][0]["segments"] if "context" in s), "")
    return "\n".join([ln for ln in first.splitlines() if ln.strip()][-lines:])


def render_terminal(record: dict, console: Console, groups: list[int] | None = None, show_all: bool = False,
                    context_lines: int = 2) -> None:
    """Weighted groups (all with ``show_all``, or those in ``groups``), one line per response."""
    w_min = record["settings"]["w_min"]
    console.print(f"[bold]step {record['step']}[/]  gate={record['settings']['gate']}  "
                  f"hidden_position={record['settings']['hidden_position']}  w_min={w_min}  λ={record['settings']['lam']}")
    console.print(Text.assemble(("positive (λ) ", _rgb(BLUE)), ("w_min ", _rgb(GREEN)), ("→ ", "dim"),
                                ("weight 1 ", _rgb(RED)), ("in span", "underline")))
    shown = [g for g in record["groups"] if (g["group_id"] in groups if groups else show_all or g["weighted"])]
    for g in shown:
        console.rule(_group_header(g), align="left")
        console.print(Text(_context_tail(g, context_lines), style="dim"))
        for row in g["rows"]:
            line = Text(f"{'✓' if row['success'] else '✗'} r={row['reward']:+.2f} A={row['adv']:+.2f}  ")
            for tok, w, _, span in _policy_tokens(row):
                style = _rgb(token_colour(w, row["success"], w_min)) + (" underline" if span else "")
                line.append(tok.replace("\n", "⏎"), style=style)
            console.print(line)
    hidden = [g["reason"] for g in record["groups"] if g not in shown]
    if hidden:
        why = ", ".join(f"{r or 'weighted'} {hidden.count(r)}" for r in sorted(set(hidden)))
        console.print(f"[dim]{len(hidden)} more groups not shown ({why}): --all or --group ID[/]")


def _html_token(tok: str, w: float, d: float | None, span: bool, success: bool, w_min: float) -> str:
    r, g, b = token_colour(w, success, w_min)
    tip = f"w={w:.3f}" + (f" d={d:.3g}" if d is not None else "") + (" in span" if span else "")
    style = f"background:rgba({r},{g},{b},0.35)" + (";text-decoration:underline" if span else "")
    return f'<span title="{tip}" style="{style}">{html.escape(tok)}</span>'


def render_html(record: dict) -> str:
    """One self-contained page (inline styles, no scripts); hover a token for w, d, in-span."""
    w_min = record["settings"]["w_min"]
    parts = [f"<!doctype html><meta charset='utf-8'><title>ResRL step {record['step']}</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:auto}pre{white-space:pre-wrap;margin:.2em 0}"
             ".ctx{color:#777}.row{font-family:monospace;white-space:pre-wrap;margin:.3em 0}</style>",
             f"<h1>ResRL, step {record['step']}</h1><p>{html.escape(json.dumps(record['settings']))}</p>",
             f"<p><span style='background:rgba{BLUE + (0.35,)}'>positive (λ)</span> "
             f"<span style='background:rgba{GREEN + (0.35,)}'>w_min</span> → "
             f"<span style='background:rgba{RED + (0.35,)}'>weight 1</span> <u>in span</u></p>"]
    for g in record["groups"]:
        parts.append(f"<h3>{html.escape(_group_header(g))}</h3>")
        parts.append(f"<pre class='ctx'>{html.escape(_context_tail(g, 4))}</pre>")
        for row in g["rows"]:
            head = f"{'✓' if row['success'] else '✗'} r={row['reward']:+.2f} A={row['adv']:+.2f}  "
            toks = "".join(_html_token(t, w, d, s, row["success"], w_min) for t, w, d, s in _policy_tokens(row))
            parts.append(f"<div class='row'>{html.escape(head)}{toks}</div>")
    return "\n".join(parts)


def histogram_png(record: dict, path: Path) -> Path:
    """Weights of negative tokens; residual energy of negatives vs positives (weighted groups)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("the histogram needs matplotlib: pip install 'resrl-agents[plot]'") from e
    w_neg, d_neg, d_pos = [], [], []
    for g in record["groups"]:
        if not g["weighted"]:
            continue
        for row in g["rows"]:
            for _, w, d, _ in _policy_tokens(row):
                if not row["success"]:
                    w_neg.append(w)
                if d is not None and math.isfinite(d):
                    (d_pos if row["success"] else d_neg).append(d)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.hist(w_neg, bins=30, color="#d73a49")
    a.set(title=f"negative-token weights (n={len(w_neg)})", xlabel="weight", ylabel="tokens")
    log_d = [[math.log10(max(d, 1e-12)) for d in ds] for ds in (d_neg, d_pos)]  # in-span tokens sit at ~-12
    b.hist(log_d, bins=30, label=["negatives", "positives"], color=["#d73a49", "#3884ff"])
    b.set(title="residual energy off the positive subspace", xlabel="log10 d (floored at 1e-12)", ylabel="tokens")
    b.legend()
    fig.suptitle(f"ResRL step {record['step']} (weighted groups only)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
