"""Parent side of a JSON-lines worker process: spawn, send, read with a deadline, stop.

Envs whose checking may hang inside C code where no Python-level timeout fires (math-verify's
sympy, BFCL's executors) run it in a child process. The parent owns the deadline: a read that
times out returns None and the caller kills the child (``kill(hard=True)``) and starts a new one.
The child is started with fork+exec (``subprocess``), so a parent holding torch threads is safe.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Sequence


class WorkerDied(RuntimeError):
    """The worker's stdin pipe broke or its stdout reached EOF: the process is gone."""


class PipeWorker:
    """One child ``python *args`` speaking JSON lines on stdin/stdout; reads take a deadline.

    The child must write one line (e.g. ``{"ready": true}``) once it is ready; if none comes within
    ``start_timeout_s`` it is killed and ``RuntimeError("<name> did not start ...")`` is raised.
    ``grace_s`` is how long stopping waits for a child whose stdin was closed before killing it.
    ``proc`` is the ``subprocess.Popen`` (callers poll it and read its pid).
    """

    def __init__(self, args: Sequence[str], name: str, start_timeout_s: float,
                 grace_s: float) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # so the child imports this same package
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self._finalizer = weakref.finalize(self, _stop, self.proc, grace_s)
        self._buf = b""
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        if self.read(start_timeout_s) is None:
            self.kill(hard=True)
            raise RuntimeError(f"{name} did not start within {start_timeout_s}s")

    def send(self, msg: Any) -> None:
        """Write ``msg`` as one JSON line; raises WorkerDied when the pipe is broken."""
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerDied(str(e)) from e

    def read(self, timeout_s: float) -> Any | None:
        """The next JSON line, or None on timeout; raises WorkerDied on EOF."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise WorkerDied(f"worker exited with code {self.proc.poll()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, msg: Any, timeout_s: float) -> Any | None:
        """``send`` then ``read``: the reply, or None on timeout."""
        self.send(msg)
        return self.read(timeout_s)

    def kill(self, hard: bool = False) -> None:
        """Stop the worker: ``hard`` kills at once (it is stuck), else closing stdin ends it."""
        if hard:
            self.proc.kill()
        self._sel.close()
        self._finalizer()


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=grace_s)  # closing stdin ends a healthy worker
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
