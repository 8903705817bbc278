"""Answer checking with math-verify, isolated in a persistent worker process.

math-verify's own timeouts use ``signal.alarm``, which only works in the main thread, and a
pathological answer (``\\boxed{9^{9^{9^{9}}}}``) can hang sympy inside C code where no Python-level
timeout fires. So the parent never parses: a worker process (``python -m
resrl_agents.envs.verify``, started lazily, fork+exec so a parent holding torch threads is safe)
runs ``verify(parse(gold), parse(answer))`` with math-verify's timeouts off, and the parent
enforces ``timeout_s`` per pair: on timeout it kills the worker, scores that pair 0 with
``info["timeout"] = True`` and restarts the worker for the rest. A crashed worker is restarted the
same way. As a backstop the worker arms ``SIGALRM`` (default action: terminate) around each pair,
so an orphaned worker can never spin forever.

Protocol: one JSON line ``[[gold, answer], ...]`` in; one JSON line per pair out
(``{"ok": bool, "parsed": str, "error": str | null}``), then the worker waits for the next batch.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
from typing import Any, Sequence

from resrl_agents.envs.pipe_worker import PipeWorker, WorkerDied

_FINAL = "####"
_PLAIN_NUMBER = re.compile(r"^[-+]?(\d+(,\d{3})*(\.\d*)?|\.\d+)$")


def prepare_gold(gold: str) -> str:
    """Wrap a plain-number gold ("82", "70,000", "-0.5") as LaTeX ``$82$`` so it parses exactly."""
    g = gold.strip()
    return f"${g.replace(',', '')}$" if _PLAIN_NUMBER.match(g) else g


def prepare_answer(answer: str) -> str:
    """The model's final answer: the first line after the last ``####`` when present, else all.

    math-verify alone takes the last number of a free-form answer, which is wrong for
    "#### 82 (because 37 + 45)"; the ``####`` convention is what the env's prompt asks for.
    """
    if _FINAL not in answer:
        return answer
    tail = answer.rsplit(_FINAL, 1)[1].strip()
    return tail.splitlines()[0] if tail else ""


# ---------------------------------------------------------------------------------------------
# Worker side (runs in the child process only; imports math_verify)


def _score_pair(parse: Any, verify: Any, gold: str, answer: str) -> dict[str, Any]:
    gold_parsed = parse(prepare_gold(gold), parsing_timeout=None)
    pred = parse(prepare_answer(answer), parsing_timeout=None)
    ok = bool(gold_parsed) and bool(pred) and verify(gold_parsed, pred, timeout_seconds=None)
    return {"ok": bool(ok), "parsed": str(pred[-1]) if pred else "", "error": None}


def _worker_main(backstop_s: int) -> None:
    """Serve batches on stdin/stdout until stdin closes. stdout is kept for the protocol only."""
    import logging
    import signal

    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # silences "Timeout is disabled"
    from math_verify import parse, verify

    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    proto.write('{"ready": true}\n')
    proto.flush()
    for line in sys.stdin:
        for gold, answer in json.loads(line):
            signal.alarm(backstop_s)
            try:
                result = _score_pair(parse, verify, gold, answer)
            except Exception as e:  # a math-verify bug must not kill the batch
                result = {"ok": False, "parsed": "", "error": f"{type(e).__name__}: {e}"}
            finally:
                signal.alarm(0)
            proto.write(json.dumps(result) + "\n")
            proto.flush()


# ---------------------------------------------------------------------------------------------
# Parent side


class MathVerifier:
    """Scores answers against gold with math-verify in a worker process; thread-safe.

    ``score(gold, answer) -> (correct, info)``; ``info`` has ``timeout`` (bool), ``parsed`` (the
    extracted answer, "" when nothing could be parsed) and ``error`` (str or None). The worker
    starts on the first call (about a second: it imports sympy) and restarts after a timeout or
    crash; ``close()`` stops it, and a later call starts a new one. Share one verifier between
    env copies (``MathEnv(verifier=...)``) rather than running one worker per env.
    """

    def __init__(self, timeout_s: float = 5.0, start_timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._worker: PipeWorker | None = None
        self._lock = threading.Lock()
        self.restarts = 0  # worker restarts after a timeout or crash (for metrics / tests)

    def score(self, gold: str, answer: str) -> tuple[bool, dict[str, Any]]:
        return self.score_many([(gold, answer)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bool, dict[str, Any]]]:
        """Score a batch in one round trip; each pair gets its own ``timeout_s``."""
        results: list[tuple[bool, dict[str, Any]]] = []
        with self._lock:
            while len(results) < len(pairs):
                results += self._run(pairs[len(results):])
        return results

    def _run(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bool, dict[str, Any]]]:
        """Score until done or the worker fails; a failure scores the current pair 0 and stops."""
        out: list[tuple[bool, dict[str, Any]]] = []
        try:
            worker = self._ensure_worker()
            worker.send([list(p) for p in pairs])
            while len(out) < len(pairs):
                line = worker.read(self.timeout_s)
                if line is None:
                    self._discard_worker(hard=True)
                    return out + [(False, {"timeout": True, "parsed": "", "error": None})]
                out.append((line["ok"], {"timeout": False, "parsed": line["parsed"], "error": line["error"]}))
        except WorkerDied as e:
            self._discard_worker(hard=True)
            out.append((False, {"timeout": False, "parsed": "", "error": f"verifier worker crashed: {e}"}))
        return out

    def _ensure_worker(self) -> PipeWorker:
        if self._worker is None or self._worker.proc.poll() is not None:
            backstop_s = max(1, math.ceil(2 * self.timeout_s))
            self._worker = PipeWorker(["-m", "resrl_agents.envs.verify", str(backstop_s)],
                                      "math-verify worker", self.start_timeout_s, grace_s=1.0)
        return self._worker

    def _discard_worker(self, hard: bool) -> None:
        if self._worker is not None:
            self._worker.kill(hard)
            self._worker = None
            self.restarts += 1

    @property
    def worker_pid(self) -> int | None:
        return None if self._worker is None else self._worker.proc.pid

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.kill()
                self._worker = None

    # A verifier is a handle on a service. Gymnasium deep-copies ``env.spec.kwargs``: the copy
    # shares the worker. Pickled into another process it becomes a fresh, not yet started handle.
    def __deepcopy__(self, memo: dict[int, Any]) -> MathVerifier:
        return self

    def __reduce__(self) -> tuple[type, tuple[float, float]]:
        return MathVerifier, (self.timeout_s, self.start_timeout_s)

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
