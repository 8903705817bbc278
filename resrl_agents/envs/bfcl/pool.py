"""Parent side of the BFCL workers: processes, deadlines, restarts, sessions.

The training process talks to ``worker.py`` children only through JSON lines; it never imports
``bfcl_eval``. A worker that times out is killed; one that dies is restarted and the request
retried once, and a multi-turn session the new worker does not know is rebuilt by replaying the
session's earlier steps (BFCL's backends are deterministic: seeded RNGs, no clock reads).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from resrl_agents.envs.pipe_worker import PipeWorker, WorkerDied

Call = tuple[str, dict]  # (function name, JSON arguments)


@dataclass
class Session:
    """Parent-side record of one multi-turn episode: its key, its worker, every executed step."""

    entry: dict
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    worker: int = 0
    history: list[list[Call]] = field(default_factory=list)


class BFCLWorkerPool:
    """``num_workers`` BFCL worker processes, started lazily; thread-safe.

    * ``score_ast(...)``: BFCL's AST checker on one single-turn answer.
    * ``open_session(entry)`` / ``execute(session, calls)`` / ``end_session(session)``: run a
      multi-turn episode's calls against its own backend instances.
    * ``score_multi_turn(entry, ground_truth, turns, dense)``: BFCL's multi-turn checker.

    Every request gets ``timeout_s``. A worker that times out is killed; one that died is
    restarted and the request retried once (a session's earlier steps are replayed first). A
    request that still fails returns ``{"error": ..., "timeout": bool}``. Share one pool between
    env copies (``BFCLEnv(pool=...)``) rather than starting workers per env.
    """

    def __init__(self, num_workers: int = 1, timeout_s: float = 30.0,
                 start_timeout_s: float = 60.0) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._procs: list[PipeWorker | None] = [None] * num_workers
        self._locks = [threading.Lock() for _ in range(num_workers)]
        self._next = 0
        self.restarts = 0  # workers replaced after a timeout or crash (metrics / tests)

    # ---------------------------------------------------------------- requests

    def _ensure(self, i: int) -> PipeWorker:
        proc = self._procs[i]
        if proc is None or proc.proc.poll() is not None:
            if proc is not None:
                proc.kill(hard=True)
                self.restarts += 1
            backstop = max(1, int(2 * self.timeout_s) + 1)
            main = ("from resrl_agents.envs.bfcl.worker import _worker_main; "
                    f"_worker_main({backstop})")
            proc = self._procs[i] = PipeWorker(["-c", main], "BFCL worker", self.start_timeout_s,
                                               grace_s=2.0)
        return proc

    def _discard(self, i: int) -> None:
        if self._procs[i] is not None:
            self._procs[i].kill(hard=True)
            self._procs[i] = None
            self.restarts += 1

    def _call(self, i: int, req: dict) -> dict:
        """One request on worker ``i`` (lock held by the caller); retried once after a crash."""
        for attempt in range(2):
            try:
                response = self._ensure(i).request(req, self.timeout_s)
            except WorkerDied as e:
                self._discard(i)
                if attempt == 0:
                    continue
                return {"error": f"BFCL worker crashed: {e}", "timeout": False}
            if response is None:
                self._discard(i)
                return {"error": f"BFCL worker timed out after {self.timeout_s}s", "timeout": True}
            return response
        raise AssertionError("unreachable")

    def _free_worker(self) -> int:
        """A worker whose lock is free now, else the next one round-robin (acquired)."""
        for i, lock in enumerate(self._locks):
            if lock.acquire(blocking=False):
                return i
        i = self._next = (self._next + 1) % len(self._locks)
        self._locks[i].acquire()
        return i

    # ---------------------------------------------------------------- API

    def score_ast(self, category: str, language: str, functions: Sequence[dict],
                  calls: Sequence[Call], answer: Sequence[dict]) -> dict:
        """``{"valid": bool, "error_type": str, "error": str}`` from BFCL's ``ast_checker``."""
        req = {"op": "ast", "category": category, "language": language,
               "functions": list(functions), "calls": [list(c) for c in calls], "answer": list(answer)}
        i = self._free_worker()
        try:
            return self._call(i, req)
        finally:
            self._locks[i].release()

    def open_session(self, entry: dict) -> Session:
        session = Session(entry=entry)
        session.worker = int(session.key, 16) % len(self._locks)
        return session

    def execute(self, session: Session, calls: Sequence[Call]) -> dict:
        """Run one step; ``{"results": [str per call]}`` or an ``error``. The step is recorded
        (and replayed after a restart) whether or not it failed."""
        calls = [(name, dict(args)) for name, args in calls]
        req = {"op": "exec", "key": session.key, "entry": session.entry,
               "steps_done": len(session.history), "calls": calls}
        if not session.history:
            req["history"] = []  # the first step opens the session in one round trip
        with self._locks[session.worker]:
            response = self._call(session.worker, req)
            if response.get("need_history"):
                response = self._call(session.worker, {**req, "history": session.history})
                if response.get("need_history"):  # the worker was replaced mid-replay
                    response = {"error": "BFCL worker lost the session twice", "timeout": False}
        session.history.append(calls)
        return response

    def end_session(self, session: Session) -> None:
        with self._locks[session.worker]:
            proc = self._procs[session.worker]
            if proc is not None and proc.proc.poll() is None:
                self._call(session.worker, {"op": "end", "key": session.key})

    def score_multi_turn(self, entry: dict, ground_truth: Sequence[Sequence[str]],
                         turns: Sequence[Sequence[Sequence[Call]]], dense: bool = False) -> dict:
        """BFCL's multi-turn checker on ``turns`` (per user turn, per step, the calls). Adds
        ``turns_passed`` when ``dense``."""
        req = {"op": "score", "entry": entry, "ground_truth": [list(t) for t in ground_truth],
               "turns": [[[[n, dict(a)] for n, a in step] for step in turn] for turn in turns],
               "dense": dense}
        i = self._free_worker()
        try:
            return self._call(i, req)
        finally:
            self._locks[i].release()

    def ping(self, worker: int = 0) -> dict:
        with self._locks[worker]:
            return self._call(worker, {"op": "ping"})

    @property
    def worker_pids(self) -> list[int | None]:
        return [None if p is None else p.proc.pid for p in self._procs]

    def close(self) -> None:
        for i, lock in enumerate(self._locks):
            with lock:
                if self._procs[i] is not None:
                    self._procs[i].kill()
                    self._procs[i] = None

    # A pool is a handle on a service. Gymnasium deep-copies ``env.spec.kwargs``: the copy shares
    # the workers. Pickled into another process it becomes a fresh, not yet started pool.
    def __deepcopy__(self, memo: dict[int, Any]) -> BFCLWorkerPool:
        return self

    def __reduce__(self) -> tuple[type, tuple[int, float, float]]:
        return BFCLWorkerPool, (len(self._locks), self.timeout_s, self.start_timeout_s)

    def __enter__(self) -> BFCLWorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

