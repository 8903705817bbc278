"""Envs in worker processes, reset and stepped in parallel.

TextWorld (ALFWorld) and most text envs step in pure Python, 10-25 ms a step: a turn of 64
episodes stepped one after another keeps the model waiting for a second. :class:`EnvPool` holds
``n`` envs in ``workers`` spawned processes (env i in worker i mod W, so a group's copies spread
over the workers; copies inside one worker share resources through ``shared_kwargs``, as
``make_envs`` does) and runs each turn's steps in all workers at once. The agent loop takes it in
place of a list of envs (``rollout.env_workers``).

A step that raises inside a worker comes back as that exception (the agent loop marks the
episode, as it does in-process). A worker that dies fails its envs' steps with :class:`EnvWorkerDied`.
An env that cannot be built from its kwargs is a :class:`ConfigError`, in a worker or not.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from typing import Any, Sequence

from resrl_agents.config.errors import ConfigError

StepResult = tuple[str, float, bool, bool, dict]


class EnvWorkerDied(RuntimeError):
    pass


def _worker(conn, env_id: str, kwargs: dict, count: int) -> None:
    """Serve ("reset", [(k, seed, options)]), ("step", [(k, action)]) and ("close",) for ``count``
    local envs; each item's answer is its result or the exception it raised."""
    try:
        envs = make_envs(env_id, kwargs, count)
    except ConfigError as e:
        conn.send(e)
        return
    conn.send(getattr(envs[0].unwrapped, "max_turns", 1 << 30))
    while True:
        msg = conn.recv()
        if msg[0] == "close":
            break
        out = []
        for k, *args in msg[1]:
            try:
                if msg[0] == "reset":
                    out.append(envs[k].reset(seed=args[0], options=args[1]))
                else:
                    out.append(envs[k].step(args[0]))
            except Exception as e:  # noqa: BLE001  (returned to the caller, who decides)
                out.append(e)
        conn.send(out)
    for env in envs:
        env.close()
    conn.close()


class EnvPool:
    """``n`` copies of one env in ``workers`` processes; ``reset_many``/``step_many`` in parallel."""

    def __init__(self, env_id: str, kwargs: dict, n: int, workers: int):
        workers = max(1, min(workers, n))
        self.n = n
        ctx = mp.get_context("spawn")  # no fork after torch / OpenMP threads started
        self._conns, self._procs = [], []
        for w in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, env_id, dict(kwargs), len(range(w, n, workers))),
                               daemon=True, name=f"env-worker-{w}")
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        first = [c.recv() for c in self._conns]
        if isinstance(first[0], ConfigError):
            self.close()
            raise first[0]
        self.max_turns = first[0:1] * n  # per env: all copies share the config

    def __len__(self) -> int:
        return self.n

    def _call(self, kind: str, items: Sequence[tuple[int, Any, ...]]) -> list[Any]:
        """Send each worker its share of ``items`` (env index first), gather answers in order."""
        W = len(self._conns)
        shares: list[list[tuple[int, int]]] = [[] for _ in range(W)]  # (position in items, local index)
        for pos, (i, *_rest) in enumerate(items):
            shares[i % W].append((pos, i // W))
        out: list[Any] = [None] * len(items)
        sent = set()
        for w, share in enumerate(shares):
            if share:
                with contextlib.suppress(BrokenPipeError, OSError):  # a dead worker is reported below
                    self._conns[w].send((kind, [(k, *items[pos][1:]) for pos, k in share]))
                    sent.add(w)
        for w, share in enumerate(shares):
            if not share:
                continue
            try:
                if w not in sent:
                    raise EOFError
                answers = self._conns[w].recv()
            except (EOFError, OSError):
                answers = [EnvWorkerDied(f"env worker {w} died (exit code {self._procs[w].exitcode})")] * len(share)
            for (pos, _), a in zip(share, answers):
                out[pos] = a
        return out

    def reset_many(self, items: Sequence[tuple[int, int, dict | None]]) -> list[Any]:
        """[(env index, seed, options)] -> [(obs, info) or the exception raised]."""
        return self._call("reset", items)

    def step_many(self, items: Sequence[tuple[int, str]]) -> list[Any]:
        """[(env index, action)] -> [(obs, reward, terminated, truncated, info) or the exception]."""
        return self._call("step", items)

    def close(self) -> None:
        for conn, proc in zip(self._conns, self._procs):
            with contextlib.suppress(BrokenPipeError, OSError):  # already gone: nothing to tell it
                conn.send(("close",))
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
            conn.close()
        self._conns, self._procs = [], []


class LocalEnvs:
    """The same interface over in-process envs, one after another."""

    def __init__(self, envs: Sequence[Any]):
        self.envs = list(envs)
        self.n = len(self.envs)
        self.max_turns = [getattr(e.unwrapped, "max_turns", 1 << 30) for e in self.envs]

    def __len__(self) -> int:
        return self.n

    def reset_many(self, items: Sequence[tuple[int, int, dict | None]]) -> list[Any]:
        return [self._try(lambda: self.envs[i].reset(seed=seed, options=options)) for i, seed, options in items]

    def step_many(self, items: Sequence[tuple[int, str]]) -> list[Any]:
        return [self._try(lambda: self.envs[i].step(action)) for i, action in items]

    @staticmethod
    def _try(fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001  (returned to the caller, who decides)
            return e


def make_envs(env_id: str, kwargs: dict, n: int) -> list[Any]:
    """``n`` copies of an env; copies share the first one's heavy resources (``shared_kwargs``).

    An env whose constructor rejects its kwargs (unknown or wrong kwargs, a missing data file, a
    module that does not import) is a :class:`ConfigError` naming ``env.kwargs``.
    """
    import gymnasium as gym

    import resrl_agents.envs  # noqa: F401  (registers the env ids)

    try:
        first = gym.make(env_id, **kwargs)
    except (TypeError, ValueError, ImportError, OSError) as e:
        raise ConfigError(f"{env_id} cannot be built from env.kwargs / env.eval_kwargs: {e}") from e
    shared = first.unwrapped.shared_kwargs()
    return [first] + [gym.make(env_id, **kwargs, **shared) for _ in range(n - 1)]


def close_envs(envs: Sequence[Any] | EnvPool) -> None:
    """Close a list of envs, or an :class:`EnvPool` (its workers and their envs)."""
    for env in [envs] if isinstance(envs, EnvPool) else envs:
        env.close()
