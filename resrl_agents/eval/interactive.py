"""One episode at a time, turn by turn, for a person watching or playing (``python -m resrl_agents.play``).

:class:`InteractiveSession` is the core the terminal UI (``eval/interactive_ui.py``) drives:
``reset(seed)``, ``propose()`` (the agent's answer for the current state), ``take(text, actor)``
(one env step with an answer from the agent or a person), ``transcript()`` and ``save(path)``.

Prompts are the training ones: ``first_messages``/``user_text`` for the ``full`` layout and
``window_prompt`` for ``window:k`` (``rollout/agent_loop.py``), rendered by the same
:class:`ChatRenderer`; answers are parsed by ``tools/react.py``. The ``full`` prompt *text* equals
training's (the chat template is prefix-stable, which ``ChatRenderer.continuation`` checks there);
its ids are encoded from that text each turn, since a turn a person typed has no generated ids.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resrl_agents.rollout.agent_loop import Layout, first_messages, observation_messages, user_text, window_prompt
from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.policy import Policy, SamplingParams
from resrl_agents.tools.react import parse_react

AGENT, HUMAN = "agent", "human"
_TURN_SEED_STRIDE = 1_000_003  # as rollout(): sampling seed of turn t = seed * stride + t


class EpisodeOver(RuntimeError):
    """A step was asked for after the episode ended (reset to play on)."""


@dataclass(frozen=True)
class Agent:
    """The model side of a session: a policy, the renderer of its prompts, and how it samples."""

    policy: Policy
    renderer: ChatRenderer
    history: str = "full"  # full | window:k, as rollout.history
    max_new_tokens: int = 512  # per turn
    max_context_tokens: int = 4096  # prompt + max_new_tokens beyond this truncates the episode
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0  # sampling seed; turn t samples with seed * 1_000_003 + t


@dataclass(frozen=True)
class Proposal:
    """The agent's answer for the current state. ``thought``/``action`` are the ReAct parts when
    the answer has an ``<action>`` block, else None (tool calls, math answers: see ``text``)."""

    text: str  # the assistant message content, exactly what the env would receive
    thought: str | None
    action: str | None
    num_tokens: int  # generated tokens, EOS included
    stopped: bool  # False when cut at max_new_tokens


@dataclass(frozen=True)
class TurnRecord:
    """One step of the episode as the transcript stores it."""

    step: int  # 1-based
    actor: str  # "agent" | "human"
    text: str  # the answer the env received
    thought: str | None  # ReAct thought of ``text`` (None when absent)
    action: str | None  # ReAct action of ``text`` (None when ``text`` has no <action> block)
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    invalid: bool
    won: bool
    typed: str | None = None  # what the person typed, when ``actor == "human"``
    error: str = ""  # an env crash (the episode ends, as in training)


def is_react(system_prompt: str | None) -> bool:
    """True when the env asks for ``<think>…</think><action>…</action>`` answers."""
    return "<action>" in (system_prompt or "")


def human_answer(typed: str, react: bool) -> str:
    """The answer text for a typed command: wrapped in ``<action>…</action>`` for ReAct envs
    unless the person wrote the tags; passed as is otherwise (tool calls, ``#### 42``)."""
    typed = typed.strip()
    if react and "<action>" not in typed.lower():
        return f"<action>{typed}</action>"
    return typed


@dataclass
class EpisodeState:
    """The live episode (replaced on every reset)."""

    seed: int | None  # the reset seed (None: drawn by the env)
    first_obs: str  # the observation after reset
    obs: str  # the current observation
    info: dict  # reset info; admissible_actions kept current
    messages: list[dict]  # the conversation in the full layout (system, user, assistant, ...)
    window: list[tuple[str, str]] = field(default_factory=list)  # (obs, answer) pairs
    turns: list[TurnRecord] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    error: str = ""


class InteractiveSession:
    """Step one env episode by episode with an agent, a person, or both taking turns.

    ``agent`` is None for ``policy=human``: then only :meth:`take` plays. ``env_id`` and
    ``policy_label`` only label the transcript.
    """

    def __init__(self, env: Any, agent: Agent | None = None, *, env_id: str = "", policy_label: str = HUMAN):
        self.env = env
        self.agent = agent
        self.layout = Layout.parse(agent.history) if agent is not None else Layout("full")
        self.env_id = env_id
        self.policy_label = policy_label
        self._s: EpisodeState | None = None

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> EpisodeState:
        if self._s is None:
            raise RuntimeError("call reset() first")
        return self._s

    @property
    def observation(self) -> str:
        return self.state.obs

    @property
    def info(self) -> dict:
        """The reset info, with ``admissible_actions`` kept current after every step."""
        return self.state.info

    @property
    def task(self) -> str:
        return str(self.state.info.get("task", ""))

    @property
    def admissible_actions(self) -> list[str]:
        return list(self.state.info.get("admissible_actions") or [])

    @property
    def turns(self) -> list[TurnRecord]:
        return list(self.state.turns)

    @property
    def done(self) -> bool:
        return self.state.terminated or self.state.truncated

    @property
    def total_reward(self) -> float:
        return sum(t.reward for t in self.state.turns)

    @property
    def won(self) -> bool:
        return any(t.won for t in self.state.turns)

    @property
    def react(self) -> bool:
        return is_react(self.state.info.get("system_prompt"))

    # ------------------------------------------------------------------ episode

    def reset(self, seed: int | None = None, options: dict | None = None) -> str:
        """Start a new episode (same seed, same task as in eval); returns the first observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        self._s = EpisodeState(seed, obs, obs, info, first_messages(info, user_text(obs, info)))
        return obs

    def prompt(self) -> tuple[str, list[int]]:
        """The prompt the agent sees now (text, ids), rendered as in training for the layout."""
        if self.agent is None:
            raise RuntimeError("no agent in this session (policy=human)")
        s, k = self.state, self.layout.k
        if self.layout.kind == "full":
            messages = s.messages
        else:
            messages = first_messages(s.info, window_prompt(s.info, s.obs, s.window[-k:] if k else [], len(s.turns)))
        return self.agent.renderer.prompt(messages, s.info.get("tools"))

    def propose(self) -> Proposal:
        """The agent's answer for the current state (the env is not stepped).

        A prompt that leaves no room for ``max_new_tokens`` in ``max_context_tokens`` truncates
        the episode (training's context-overflow rule) and raises :class:`EpisodeOver`.
        """
        self._check_live()
        agent = self.agent
        _, ids = self.prompt()
        if len(ids) + agent.max_new_tokens > agent.max_context_tokens:
            self.state.truncated = True
            raise EpisodeOver(f"the prompt ({len(ids)} tokens) + max_new_tokens ({agent.max_new_tokens}) exceeds "
                              f"max_context_tokens ({agent.max_context_tokens}): episode truncated")
        params = SamplingParams(agent.max_new_tokens, agent.temperature, agent.top_p,
                                seed=agent.seed * _TURN_SEED_STRIDE + len(self.state.turns))
        [gen] = agent.policy.generate([ids], params)
        text = agent.renderer.assistant_content(gen.ids, gen.stopped)
        parsed = parse_react(text)
        return Proposal(text, parsed.thought, parsed.action, len(gen.ids), gen.stopped)

    def take(self, text: str, actor: str = HUMAN, *, typed: str | None = None) -> TurnRecord:
        """Step the env with the answer ``text`` (exactly as given) and record who gave it."""
        self._check_live()
        if actor not in (AGENT, HUMAN):
            raise ValueError(f"actor must be {AGENT!r} or {HUMAN!r}, got {actor!r}")
        s = self.state
        error = ""
        try:
            obs, reward, terminated, truncated, info = self.env.step(text)
        except Exception as e:  # an env crash ends the episode and is recorded, as in rollout()
            obs, reward, terminated, truncated, info = "", 0.0, False, True, {}
            error = f"{type(e).__name__}: {e}"
        error = error or str(info.get("error", ""))
        if not (terminated or truncated) and len(s.turns) + 1 >= getattr(self.env.unwrapped, "max_turns", 1 << 30):
            truncated = True  # the env forgot its own cap; never loop forever
        parsed = parse_react(text)
        rec = TurnRecord(len(s.turns) + 1, actor, text, parsed.thought, parsed.action, obs, float(reward),
                         bool(terminated), bool(truncated), bool(info.get("invalid", False)),
                         bool(info.get("won", False)), typed if actor == HUMAN else None, error)
        s.turns.append(rec)
        s.window.append((s.obs, text))
        if info.get("admissible_actions") is not None:
            s.info["admissible_actions"] = list(info["admissible_actions"])
        s.obs, s.terminated, s.truncated, s.error = obs, rec.terminated, rec.truncated, error
        s.messages.append({"role": "assistant", "content": text})
        if not self.done:
            s.messages += observation_messages(obs, info, s.info)
        return rec

    def take_typed(self, typed: str) -> TurnRecord:
        """A person's turn: ``typed`` is a command (``go to desk 1``, wrapped for ReAct envs), the
        number of an admissible action (1-based), or a whole answer. A number that is not an
        action's is a ValueError (the env is not stepped)."""
        acts, key = self.admissible_actions, typed.strip()
        if key.isdigit() and acts:
            if not 1 <= int(key) <= len(acts):
                raise ValueError(f"no action number {key}: the admissible actions are numbered 1-{len(acts)}")
            key = acts[int(key) - 1]
        return self.take(human_answer(key, self.react), HUMAN, typed=typed.strip())

    def step(self) -> TurnRecord:
        """The agent's turn: propose, then take its answer."""
        return self.take(self.propose().text, AGENT)

    def run(self, max_steps: int | None = None) -> list[TurnRecord]:
        """Agent turns until the episode ends (or ``max_steps`` turns)."""
        out: list[TurnRecord] = []
        while not self.done and (max_steps is None or len(out) < max_steps):
            out.append(self.step())
        return out

    def _check_live(self) -> None:
        if self.done:
            raise EpisodeOver("the episode is over; reset() for a new task")

    # ------------------------------------------------------------------ transcript

    def transcript(self) -> dict[str, Any]:
        """The episode as JSON-ready data: task, every turn (who acted, thought, action,
        observation, reward), the outcome, and the chat messages (usable as SFT data)."""
        s = self.state
        return {
            "env_id": self.env_id, "policy": self.policy_label, "seed": s.seed,
            "task_id": str(s.info.get("task_id", "")), "task": self.task, "family": str(s.info.get("family", "")),
            "system_prompt": s.info.get("system_prompt"), "initial_observation": s.first_obs,
            "turns": [asdict(t) for t in s.turns],
            "return": self.total_reward, "won": self.won, "terminated": s.terminated, "truncated": s.truncated,
            "error": s.error, "human_turns": sum(t.actor == HUMAN for t in s.turns),
            "messages": list(s.messages), "tools": s.info.get("tools"),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`transcript` as JSON atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.transcript(), f, ensure_ascii=False, indent=2)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
