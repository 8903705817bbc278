"""``python -m resrl_agents.inspect RUN_DIR [--step N]``: what ResRL did at a kept step.

Prints every group's responses with tokens coloured by weight, and writes ``resrl_step_<N>.html``,
the same view as ``resrl_step_<N>.svg`` (as the terminal shows it) and ``resrl_step_<N>_hist.png``
next to the kept step (or into ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from resrl_agents.eval.resrl_view import histogram_png, load_step, render_html, render_terminal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m resrl_agents.inspect", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a run's output_dir (trained with trainer.inspect_every=N)")
    ap.add_argument("--step", type=int, default=None, help="1-based step (default: the newest kept)")
    ap.add_argument("--group", type=int, action="append", help="only these group ids in the terminal (repeatable)")
    ap.add_argument("--all", action="store_true", help="also the groups that were not weighted")
    ap.add_argument("--out", default=None, help="folder for the HTML and PNG (default: RUN_DIR/inspect)")
    args = ap.parse_args(argv)
    try:
        record = load_step(args.run_dir, args.step)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    console = Console(record=True)
    render_terminal(record, console, groups=args.group, show_all=args.all)
    out = Path(args.out or Path(args.run_dir) / "inspect")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"resrl_step_{record['step']:06d}"
    page, svg = stem.with_suffix(".html"), stem.with_suffix(".svg")
    page.write_text(render_html(record), encoding="utf-8")
    console.save_svg(str(svg), title=f"python -m resrl_agents.inspect --step {record['step']}")
    png = histogram_png(record, stem.with_name(stem.name + "_hist.png"))
    print(f"wrote {page}\nwrote {svg}\nwrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
