"""The terminal UI of ``python -m resrl_agents.play`` (or ``python -m resrl_agents.eval mode=interactive``).

It reads one command per line from ``stdin`` and draws with ``rich`` on ``console``; both are
injectable, so a test drives it with scripted input. The episode logic is
:class:`resrl_agents.eval.interactive.InteractiveSession`; this module only shows it and reads
commands. A command that fails (a bad argument, an unwritable path, the endpoint going down) is
reported in one line and the episode stays as it was: nothing typed ends the session but ``q``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from resrl_agents.config.errors import ConfigError
from resrl_agents.config.eval_schema import EvalConfig
from resrl_agents.eval.interactive import HUMAN, Agent, EpisodeOver, InteractiveSession, TurnRecord

HELP = """\
  s  or Enter   the agent takes one turn
  r [N]         the agent plays to the end of the episode (at most N turns)
  a TEXT        you take this turn: an admissible action, its number, or a whole answer
  t             take over: type the action on the next line
  n [SEED]      reset to a new task (the next task seed, or SEED)
  w [PATH]      save the episode transcript as JSON
  p             show the prompt the agent sees now
  q             quit
  ?             this help
With policy=human any line that is not a command is your action."""
QUIET_LOGGERS = ("httpx", "httpx2", "openai")  # the openai client's HTTP layer logs every request at INFO
KEYS = "s/Enter agent turn · a TEXT your turn · r run to the end · n new task · w save · p prompt · ? help · q quit"


# ---------------------------------------------------------------------- rendering (pure)

def task_panel(session: InteractiveSession) -> Panel:
    """The task and the first observation, as shown after a reset."""
    info = session.info
    body = Text.assemble(("Task: ", "bold"), (session.task or "(see the observation)", "bold yellow"), "\n\n",
                         session.observation)
    title = f"{info.get('task_id', '')}  seed {session.state.seed}".strip()
    return Panel(body, title=Text(title), subtitle=Text(f"{session.env_id} · policy {session.policy_label}"),
                 border_style="blue")


def turn_panel(rec: TurnRecord) -> Panel:
    """One turn: who acted, the Thought and Action (or the raw answer), the observation, reward."""
    parts: list[tuple[str, str] | str] = []
    if rec.action is not None:
        if rec.thought:
            parts += [("Thought: ", "bold cyan"), (rec.thought, "italic"), "\n"]
        parts += [("Action: ", "bold green"), (rec.action, "bold"), "\n"]
    else:
        parts += [("Answer: ", "bold green"), rec.text.strip() or ("(blank)", "dim"), "\n"]
    parts += [("Observation: ", "bold magenta"), rec.observation]
    if rec.error:
        parts += ["\n", ("Env error: ", "bold red"), rec.error]
    flags = [f"reward {rec.reward:+g}"] + ["invalid"] * rec.invalid + ["won"] * rec.won
    who = "you" if rec.actor == HUMAN else "agent"
    style = "yellow" if rec.actor == HUMAN else "green"
    return Panel(Text.assemble(*parts), title=Text(f"Turn {rec.step} · {who}"), subtitle=Text(", ".join(flags)),
                 border_style=style, title_align="left")


def actions_view(actions: Sequence[str]) -> RenderableType:
    """The admissible actions, numbered (``a 3`` takes number 3)."""
    items = [Text.assemble((f"{i}.", "dim"), " ", a) for i, a in enumerate(actions, 1)]
    return Group(Text("Admissible actions:", style="bold"), Columns(items, padding=(0, 3)))


def outcome_text(session: InteractiveSession) -> Text:
    s = session.state
    how = "won" if session.won else ("truncated" if s.truncated else "ended")
    return Text(f"Episode over: {how}, return {session.total_reward:+g} in {len(s.turns)} turns "
                f"({sum(t.actor == HUMAN for t in s.turns)} yours).  n = new task, w = save, q = quit",
                style="bold")


# ---------------------------------------------------------------------- the command loop

class PlayUI:
    """Reads commands, drives the session, draws every turn. ``seeds`` are the task seeds ``n``
    walks through (cycling); ``out_dir`` is where ``w`` saves when no path is given."""

    def __init__(self, session: InteractiveSession, *, seeds: Sequence[int], out_dir: str | Path,
                 stdin: TextIO | None = None, console: Console | None = None):
        if not seeds:
            raise ValueError("seeds must name at least one task seed")
        self.session = session
        self.seeds = list(seeds)
        self.out_dir = Path(out_dir)
        self.stdin = stdin if stdin is not None else sys.stdin
        self.console = console if console is not None else Console()
        self.episodes = 0
        self.saved: list[Path] = []
        self._commands = {"s": self.cmd_step, "": self.cmd_step, "r": self.cmd_run, "a": self.cmd_act,
                          "t": self.cmd_take_over, "n": self.cmd_new, "w": self.cmd_save, "p": self.cmd_prompt,
                          "?": self.cmd_help, "h": self.cmd_help}

    def run(self) -> None:
        """Reset to the first task, then read and run commands until ``q`` or end of input."""
        self.new_task(self.seeds[0])
        self.console.print(Text(KEYS, style="dim"))
        while (line := self.read("> ")) is not None:
            word, _, arg = line.strip().partition(" ")
            if word in ("q", "quit", "exit"):
                break
            command = self._commands.get(word)
            if command is None and self.session.agent is None and line.strip():
                command, arg = self.cmd_act, line.strip()  # policy=human: a bare line is an action
            if command is None:
                self.console.print(Text(f"unknown command {word!r}; ? for help", style="red"))
                continue
            try:
                command(arg.strip())
            except (EpisodeOver, ValueError) as e:  # a refused command or a config mistake: its message says why
                self.console.print(Text(str(e), style="red"))
            except KeyboardInterrupt:
                self.console.print(Text("interrupted", style="red"))
            except Exception as e:  # noqa: BLE001  (a failed command never ends the session or the episode)
                self.console.print(Text(f"error: {type(e).__name__}: {e}", style="red"))

    def read(self, prompt: str) -> str | None:
        """One line (None at end of input or Ctrl-C). A terminal gets ``input()``'s line editing;
        other input is read line by line and echoed, so a scripted session reads like a typed one."""
        if self.stdin is sys.stdin and _isatty(self.stdin):
            try:
                return self.console.input(Text(prompt, style="bold"))
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return None
        self.console.print(Text(prompt, style="bold"), end="")
        line = self.stdin.readline()
        if not line:
            self.console.print()
            return None
        line = line.rstrip("\r\n")
        self.console.print(Text(line), highlight=False)
        return line

    # ------------------------------------------------------------------ commands

    def new_task(self, seed: int) -> None:
        self.session.reset(seed=seed)
        self.episodes += 1
        self.console.print(task_panel(self.session))
        self.show_actions()

    def show_actions(self) -> None:
        if self.session.done:
            self.console.print(outcome_text(self.session))
        elif self.session.admissible_actions:
            self.console.print(actions_view(self.session.admissible_actions))

    def show_turn(self, rec: TurnRecord) -> None:
        self.console.print(turn_panel(rec))

    @contextlib.contextmanager
    def generating(self) -> Iterator[None]:
        """A spinner on a terminal (a line otherwise) while the agent writes its answer."""
        if self.console.is_terminal:
            with self.console.status("generating…"):
                yield
        else:
            self.console.print(Text("generating…", style="dim"))
            yield

    def agent_turn(self) -> None:
        with self.generating():
            rec = self.session.step()
        self.show_turn(rec)

    def cmd_step(self, arg: str) -> None:
        if self.session.agent is None:
            self.console.print(Text("policy=human: type an action (or a TEXT); ? for help", style="yellow"))
            return
        self.agent_turn()
        self.show_actions()

    def cmd_run(self, arg: str) -> None:
        if self.session.agent is None:
            self.console.print(Text("policy=human has no agent to run", style="yellow"))
            return
        limit = _count(arg, "r [N]: N, the most turns to run, is a whole number") if arg else None
        taken = 0
        while not self.session.done and (limit is None or taken < limit):
            self.agent_turn()
            taken += 1
        self.show_actions()

    def cmd_act(self, arg: str) -> None:
        if not arg:
            self.console.print(Text("a TEXT: the action to take (or t to be asked for it)", style="yellow"))
            return
        if self.session.done:
            raise EpisodeOver("the episode is over; n for a new task")
        self.show_turn(self.session.take_typed(arg))
        self.show_actions()

    def cmd_take_over(self, arg: str) -> None:
        if self.session.done:
            raise EpisodeOver("the episode is over; n for a new task")
        typed = arg or self.read("your action> ")
        if typed:
            self.cmd_act(typed)

    def cmd_new(self, arg: str) -> None:
        seed = _count(arg, "n [SEED]: SEED, a task seed, is a whole number >= 0") if arg else None
        self.new_task(self.seeds[self.episodes % len(self.seeds)] if seed is None else seed)

    def cmd_save(self, arg: str) -> None:
        path = Path(arg).expanduser() if arg else self.default_path()
        try:
            self.saved.append(self.session.save(path))
        except OSError as e:
            raise ValueError(f"cannot write {path}: {e.strerror or e}; try w with another path") from e
        self.console.print(Text(f"saved {path}", style="green"))

    def cmd_prompt(self, arg: str) -> None:
        if self.session.agent is None:
            self.console.print(Text("policy=human: the agent's prompt is not rendered", style="yellow"))
            return
        text, ids = self.session.prompt()
        self.console.print(Panel(Text(text), title=Text(f"prompt · {len(ids)} tokens"), border_style="dim"))

    def cmd_help(self, arg: str) -> None:
        self.console.print(Text(HELP))

    def default_path(self) -> Path:
        task = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.session.info.get("task_id", "task"))).strip("_")
        return self.out_dir / f"{task or 'task'}_seed{self.session.state.seed}_{time.strftime('%Y%m%d-%H%M%S')}.json"


def _count(arg: str, usage: str) -> int:
    """``arg`` as a whole number >= 0, else a ValueError with ``usage``."""
    if not arg.isdigit():
        raise ValueError(f"{usage}, got {arg!r}")
    return int(arg)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------- wiring

def run_interactive(cfg: EvalConfig, *, stdin: TextIO | None = None, console: Console | None = None) -> PlayUI:
    """Build the env (eval kwargs), the policy (none for ``policy=human``) and the UI; run it."""
    from resrl_agents.eval.runner import make_envs, run_labels, task_seeds

    if len(cfg.checkpoints) > 1:
        raise ConfigError("checkpoints: interactive play runs one policy; give model.path or a single checkpoint")
    for name in QUIET_LOGGERS:  # no "HTTP Request: POST ..." line per turn on the screen
        logging.getLogger(name).setLevel(logging.WARNING)
    human = cfg.policy.backend == HUMAN
    loaded, agent, label = None, None, HUMAN
    if not human:
        from resrl_agents.eval.policies import make_policy, resolve_device

        if cfg.num_threads:
            import torch

            torch.set_num_threads(cfg.num_threads)
        label, checkpoint = run_labels(cfg)[0]
        label = f"{cfg.policy.backend}:{label}"
        loaded = make_policy(cfg.policy, cfg.model, resolve_device(cfg.device), checkpoint=checkpoint, seed=cfg.seed)
        agent = Agent(loaded.policy, loaded.renderer, cfg.history, cfg.max_new_tokens, cfg.max_context_tokens,
                      cfg.temperature, cfg.top_p, cfg.seed)
    [env] = make_envs(cfg.env, 1)
    try:
        session = InteractiveSession(env, agent, env_id=cfg.env.id, policy_label=label)
        ui = PlayUI(session, seeds=task_seeds(cfg), out_dir=cfg.output_dir, stdin=stdin, console=console)
        ui.run()
        return ui
    finally:
        env.close()
        if loaded is not None:
            loaded.close()
