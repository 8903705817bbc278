"""One agent loop for every env: render, generate for all live episodes at once, parse/step,
append the observation, repeat until every episode is done.

History layouts (``rollout.history``):
  ``full``      one growing sequence per episode: prompt, then per turn the exact generated ids
                (loss mask 1) and the next observation's tokens (mask 0), tokenized once.
  ``window:k``  each turn is its own sample whose prompt holds the task, the last k
                (observation, action) pairs and the current observation (verl-agent's layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from resrl_agents.rollout.chat import ChatRenderer
from resrl_agents.rollout.env_pool import EnvPool, LocalEnvs
from resrl_agents.rollout.policy import Policy, SamplingParams
from resrl_agents.rollout.types import Trajectory, TrajectoryGroup, Turn


@dataclass(frozen=True)
class Layout:
    kind: str  # "full" | "window"
    k: int = 0

    @staticmethod
    def parse(spec: str) -> "Layout":
        if spec == "full":
            return Layout("full")
        if spec.startswith("window:") and spec[7:].isdigit():
            return Layout("window", int(spec[7:]))
        raise ValueError(f"rollout.history must be 'full' or 'window:<k>', got {spec!r}")


@dataclass
class _Episode:
    index: int  # which env of the env set
    max_turns: int
    group_id: int
    seed: int
    info: dict
    messages: list[dict]
    obs: str
    tools: list[dict] | None = None  # OpenAI schemas from reset info, rendered by the chat template
    context_ids: list[int] = field(default_factory=list)  # full layout: everything so far
    next_obs_ids: list[int] = field(default_factory=list)  # context tokens before the next action
    next_obs_text: str = ""
    window: list[tuple[str, str]] = field(default_factory=list)  # window layout: (obs, action)
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    done: bool = False
    terminated: bool = False
    truncated: bool = False
    won: bool = False
    error: str = ""
    reward_components: dict[str, float] = field(default_factory=dict)  # summed over turns


def window_prompt(info: dict, obs: str, window: Sequence[tuple[str, str]], step: int) -> str:
    """verl-agent-style per-turn prompt: task, step count, last k pairs, observation, actions."""
    lines = [f"Your task is to: {info.get('task', '')}".rstrip()]
    if window:
        lines.append(f"Prior to this step you have taken {step} step(s). Your most recent {len(window)} "
                     "observation(s) and action(s):")
        lines += [f"[Observation {step - len(window) + i + 1}: {o}]\n[Action: {a}]" for i, (o, a) in enumerate(window)]
    lines.append(f"You are now at step {step + 1}. Current observation: {obs}")
    if info.get("admissible_actions"):
        lines.append("Admissible actions: [" + ", ".join(info["admissible_actions"]) + "]")
    return "\n".join(lines)


def user_text(obs: str, info: dict) -> str:
    """An observation as a ``full``-layout user message: with the admissible actions, when the env
    lists them, so the model sees its legal moves (the ``window`` prompt shows them too)."""
    acts = info.get("admissible_actions")
    return f"{obs}\nAdmissible actions: [{', '.join(acts)}]" if acts else obs


def observation_messages(obs: str, step_info: dict, info: dict) -> list[dict]:
    """The chat messages of a step's observation: the env's ``step_info["observation_messages"]``
    when it gives a non-empty list of messages (e.g. ``tool`` results), else one user message."""
    msgs = step_info.get("observation_messages")
    if isinstance(msgs, list) and msgs and all(isinstance(m, dict) and "role" in m for m in msgs):
        return [dict(m) for m in msgs]
    return [{"role": "user", "content": user_text(obs, info)}]


def first_messages(info: dict, obs: str) -> list[dict]:
    """The opening conversation: the env's ``prompt_messages`` when it gives them (a chat-format
    dataset prompt), else the system prompt and ``obs`` as the user message."""
    if info.get("prompt_messages"):
        return [dict(m) for m in info["prompt_messages"]]
    system = info.get("system_prompt")
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": obs}]


def _reset(index: int, max_turns: int, reset: Any, seed: int, group_id: int, renderer: ChatRenderer,
           layout: Layout) -> _Episode:
    if isinstance(reset, Exception):
        raise reset  # a task that cannot even start is a configuration error, not an episode
    obs, info = reset
    ep = _Episode(index=index, max_turns=max_turns, group_id=group_id, seed=seed, info=dict(info),
                  messages=first_messages(info, user_text(obs, info)), obs=obs, tools=info.get("tools"))
    if layout.kind == "full":
        ep.next_obs_text, ep.next_obs_ids = renderer.prompt(ep.messages, ep.tools)
    return ep


def _turn_prompt(ep: _Episode, renderer: ChatRenderer, layout: Layout) -> list[int]:
    if layout.kind == "full":
        return ep.context_ids + ep.next_obs_ids
    user = window_prompt(ep.info, ep.obs, ep.window[-layout.k:] if layout.k else [], len(ep.turns))
    msgs = first_messages(ep.info, user)
    ep.next_obs_text, ep.next_obs_ids = renderer.prompt(msgs, ep.tools)
    return ep.next_obs_ids


def _step(ep: _Episode, gen, content: str, result: Any, renderer: ChatRenderer, layout: Layout, max_context: int,
          max_new: int) -> None:
    """Record the turn: the generated action ``content`` and the env's ``result`` of stepping it."""
    if isinstance(result, Exception):  # an env crash marks the trajectory; the run goes on
        obs, reward, terminated, truncated, info = "", 0.0, False, True, {}
        ep.error = f"{type(result).__name__}: {result}"
    else:
        obs, reward, terminated, truncated, info = result
    ep.turns.append(Turn(tuple(ep.next_obs_ids), gen.ids, gen.logp, ep.next_obs_text, content,
                         float(reward), bool(info.get("invalid", False)), clipped=not gen.stopped,
                         action_hidden=gen.hidden))
    ep.reward += float(reward)
    for name, value in info.get("reward_components", {}).items():
        ep.reward_components[name] = ep.reward_components.get(name, 0.0) + float(value)
    ep.won = ep.won or bool(info.get("won", False))
    ep.terminated, ep.truncated = bool(terminated), bool(truncated)
    ep.window.append((ep.obs, content))
    if info.get("admissible_actions") is not None:
        ep.info["admissible_actions"] = info["admissible_actions"]
    ep.obs = obs
    if not (ep.terminated or ep.truncated) and len(ep.turns) >= ep.max_turns:
        ep.truncated = True  # the env forgot its own cap; never loop forever
    ep.done = ep.terminated or ep.truncated
    history, turn = list(ep.messages), {"role": "assistant", "content": content}
    ep.messages.append(turn)
    end_id = renderer.turn_end[1]
    if layout.kind == "full" and gen.stopped and end_id is not None and gen.ids[-1] != end_id:
        # a stop id that is not the template's turn end (Llama's <|end_of_text|>, Gemma's <eos>) ends
        # the text: no chat rendering continues after it, so neither does the episode
        ep.done = ep.truncated = True
    if ep.done:
        return
    new = observation_messages(obs, info, ep.info)
    ep.messages += new
    if layout.kind == "full":
        ep.context_ids += list(ep.next_obs_ids) + list(gen.ids)
        ep.next_obs_text = renderer.continuation(history, turn, gen.ids, gen.stopped, new, ep.tools)
        ep.next_obs_ids = renderer.encode(ep.next_obs_text)
        if len(ep.context_ids) + len(ep.next_obs_ids) + max_new > max_context:
            ep.done = ep.truncated = True  # context overflow is truncation


def rollout(envs: Sequence[Any] | EnvPool, seeds: Sequence[int], group_ids: Sequence[int], policy: Policy,
            renderer: ChatRenderer, *, history: str, max_new_tokens: int, max_context_tokens: int,
            temperature: float, top_p: float, seed: int, options: Sequence[dict | None] | None = None) -> list[Trajectory]:
    """Run one episode per seed (env i reset with seeds[i] and options[i]) with batched generation.

    ``envs``: a list of envs (one per seed, stepped one after another) or an :class:`EnvPool`
    (at least one env per seed, stepped in parallel worker processes).
    """
    layout = Layout.parse(history)
    pooled = hasattr(envs, "step_many")  # an EnvPool (or anything with its interface)
    env_set = envs if pooled else LocalEnvs(envs)
    if len(seeds) > len(env_set) or (not pooled and len(seeds) != len(env_set)):
        raise ValueError(f"{len(seeds)} seeds for {len(env_set)} envs")
    options = options or [None] * len(seeds)
    resets = env_set.reset_many([(i, s, o) for i, (s, o) in enumerate(zip(seeds, options, strict=True))])
    eps = [_reset(i, env_set.max_turns[i], r, s, g, renderer, layout)
           for i, (r, s, g) in enumerate(zip(resets, seeds, group_ids, strict=True))]
    if layout.kind == "full" and eps:  # a template that rewrites earlier turns fails here, not as drift
        renderer.check_multiturn(eps[0].messages, eps[0].tools)
    turn = 0
    while live := [ep for ep in eps if not ep.done]:
        prompts = [_turn_prompt(ep, renderer, layout) for ep in live]
        params = SamplingParams(max_new_tokens, temperature, top_p, seed=seed * 1_000_003 + turn)
        gens = policy.generate(prompts, params)
        contents = [renderer.assistant_content(g.ids, g.stopped) for g in gens]
        results = env_set.step_many([(ep.index, c) for ep, c in zip(live, contents)])  # in parallel in a pool
        for ep, gen, content, result in zip(live, gens, contents, results, strict=True):
            _step(ep, gen, content, result, renderer, layout, max_context_tokens, max_new_tokens)
        turn += 1
    release = getattr(policy, "release_cache", None)  # every episode is over: its KV cache is garbage
    if release is not None:
        release()
    return [_trajectory(ep) for ep in eps]


def _trajectory(ep: _Episode) -> Trajectory:
    return Trajectory(
        group_id=ep.group_id, task_id=str(ep.info.get("task_id", "")), seed=ep.seed, turns=tuple(ep.turns),
        reward=ep.reward, terminated=ep.terminated, truncated=ep.truncated, family=str(ep.info.get("family", "")),
        won=ep.won, error=ep.error, messages=tuple(ep.messages), tools=tuple(ep.tools) if ep.tools else None,
        info={"reward_components": ep.reward_components} if ep.reward_components else {},
    )


def group_trajectories(trajs: Sequence[Trajectory]) -> list[TrajectoryGroup]:
    """Gather trajectories into groups by ``group_id``, keeping first-seen order."""
    groups: dict[int, list[Trajectory]] = {}
    for t in trajs:
        groups.setdefault(t.group_id, []).append(t)
    return [TrajectoryGroup(g, tuple(ts)) for g, ts in groups.items()]
