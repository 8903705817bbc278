"""The ALFWorld text engine: TextWorld's ``PddlEnv`` wrapped the way ``AlfredTWEnv`` wraps it.

``AlfredTWEnv.init_env`` registers its games with ``textworld.gym`` over ``PddlEnv`` plus
ALFWorld's ``AlfredDemangler`` (ALFRED ids -> "apple 1") and ``AlfredInfos`` wrappers, requesting
``won`` and ``admissible_commands``. :class:`AlfredEngine` builds that same stack for one game at
a time, in-process: every ``PddlEnv`` loads its own copy of fast-downward's library, so engines
are independent, and no subprocess or gym batching is needed for one episode.

Speed: ``PddlEnv.reset`` re-translates the PDDL problem with fast-downward's Python translator
twice (~85% of a reset); loading a game re-parses the PDDL domain and grammar (the same text for
every ALFWorld game) with a tatsu parser (~65 ms); every step names each admissible command by
deriving its grammar rule, which re-parses the rule's conditional queries with tatsu and
deep-copies the derivation context (entity infos, placeholder mapping) for every symbol (~85% of
a 19 ms step on a kitchen game). Parsing is a pure function of the text, so an
:class:`EngineCache` memoises it, and the context copy becomes a shallow one: the grammar code
rebinds the copied dicts' keys but never mutates the entity infos and logic variables they hold
(``entity_infos`` itself is shared uncopied by TextWorld). A step then takes ~2.3 ms and a reset
to another game ~20 ms (was ~43), with the same text and admissible commands (tested against the
plain stack on a game of every family). These are swapped in only during engine calls; G copies
of an env share one cache (``shared_kwargs``). The translator also overwrites ``sys.argv`` and
swaps ``sys.stdout``; engine calls therefore run under one lock and ``sys.argv`` is restored
afterwards.

Expert: :meth:`AlfredEngine.plan` is TextWorld's ``policy_commands`` (what ``AlfredTWEnv`` with
``expert_type: planner`` reads): fast-downward searches from the library's current state to the
goal. A search from a game's start takes ~5 ms to ~12 s (median ~0.1 s; pick-two kitchens are the
slow ones), so it runs only when asked, the plan is followed while the commands played are its
steps (no new search), and plans are memoised per (game, state) in the :class:`EngineCache` (G
copies and later episodes of a game reuse them).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HELP = "help"  # an engine command that only prints the command list: never offered to the agent

# Serialises engine calls: the PDDL translator mutates sys.argv / sys.stdout and TextWorld's
# grammar parser is a module-level object, neither of which is thread-safe.
_ENGINE_LOCK = threading.RLock()


class EngineCache:
    """Memoised pure functions of the engine, shareable between engines.

    * ``translate``: ``fast_downward.pddl2sas`` (same domain and problem text, same translated
      task). ``PddlState`` only reads the task it gets (it copies facts and actions), so engines
      may share it; ~2-3 MB per kitchen-size game.
    * ``parse``: TextWorld's ``textgen._parse_and_convert`` (a grammar string to its symbols).
      The grammar code mutates the symbols it derives, so callers get a deep copy.
    * ``query``: ``textworld.logic``'s parse of a conjunctive query (the conditions in grammar
      rules) to its predicates, which are immutable; callers get a new list.
    * ``domain``: the PDDL logic parser's ``(actions, grammar)`` of a game's domain and grammar
      text (the same for every ALFWorld game); callers get a deep copy.
    * ``plans``: the planner's commands from a state to the goal, keyed by (game file, hash of
      the state's facts); the search is deterministic, so a state's plan never changes.
    """

    def __init__(self, maxsize: int = 64, plan_maxsize: int = 8192) -> None:
        import fast_downward
        import textworld.envs.pddl.logic as pddl_logic
        import textworld.envs.pddl.textgen as textgen
        import textworld.logic

        self._translate = functools.lru_cache(maxsize=maxsize)(fast_downward.pddl2sas)
        self._parse = functools.lru_cache(maxsize=16384)(textgen._parse_and_convert)
        self._logic_parse = textworld.logic._parse_and_convert
        self._query = functools.lru_cache(maxsize=16384)(self._logic_parse)
        self._domain = functools.lru_cache(maxsize=8)(pddl_logic._parse_and_convert)
        self._plans: OrderedDict[tuple[str, int], tuple[str, ...]] = OrderedDict()
        self._plan_maxsize = plan_maxsize
        self.plan_hits = self.plan_misses = 0

    def translate(self, domain: str, problem: str, verbose: bool = False, optimize: bool = False):
        return self._translate(domain, problem, verbose=verbose, optimize=optimize)

    def parse(self, text: str, rule_name: str = "symbols", trace: bool = False):
        return copy.deepcopy(self._parse(text, rule_name=rule_name, trace=trace))

    def domain(self, text: str, rule_name: str = "pddlStart", **kwargs):
        return copy.deepcopy(self._domain(text, rule_name=rule_name, **kwargs))

    def logic_parse(self, text: str, rule_name: str = "start", **kwargs):
        if rule_name != "conjunctiveQuery" or kwargs:
            return self._logic_parse(text, rule_name=rule_name, **kwargs)
        return list(self._query(text, rule_name=rule_name))

    def plan(self, key: tuple[str, int]) -> tuple[str, ...] | None:
        """The memoised plan from state ``key``, or None (callers hold ``_ENGINE_LOCK``)."""
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
        return plan

    def remember_plan(self, key: tuple[str, int], plan: tuple[str, ...]) -> None:
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > self._plan_maxsize:
            self._plans.popitem(last=False)

    def info(self) -> dict[str, Any]:
        """``functools`` cache statistics of the engine caches, and the plan memo's counts."""
        return {"translate": self._translate.cache_info(), "parse": self._parse.cache_info(),
                "query": self._query.cache_info(), "domain": self._domain.cache_info(),
                "plans": {"hits": self.plan_hits, "misses": self.plan_misses,
                          "currsize": len(self._plans)}}


def _copy_context(context: dict) -> dict:
    """``textgen.copy_context`` without its deep copies (see the module docstring)."""
    return {"state": context["state"], "facts": context["facts"], "variables": dict(context["variables"]),
            "mapping": dict(context["mapping"]), "entity_infos": context["entity_infos"]}


@contextlib.contextmanager
def _engine_call(cache: EngineCache) -> Iterator[None]:
    """Run engine code under the lock with the faster functions swapped in; restore sys.argv."""
    import fast_downward
    import textworld.envs.pddl.logic as pddl_logic
    import textworld.envs.pddl.textgen as textgen
    import textworld.logic

    with _ENGINE_LOCK:
        argv = sys.argv
        saved = (fast_downward.pddl2sas, textgen._parse_and_convert, textgen.copy_context,
                 textworld.logic._parse_and_convert, pddl_logic._parse_and_convert)
        fast_downward.pddl2sas, textgen._parse_and_convert = cache.translate, cache.parse
        textgen.copy_context, textworld.logic._parse_and_convert = _copy_context, cache.logic_parse
        pddl_logic._parse_and_convert = cache.domain
        try:
            yield
        finally:
            (fast_downward.pddl2sas, textgen._parse_and_convert, textgen.copy_context,
             textworld.logic._parse_and_convert, pddl_logic._parse_and_convert) = saved
            sys.argv = argv


@dataclass(frozen=True)
class EngineState:
    feedback: str  # the engine's text for the last command (the intro after a reset)
    admissible: tuple[str, ...]  # commands the engine accepts now, sorted, without "help"
    won: bool  # the PDDL goal holds
    done: bool  # the engine ended the game (won; ALFWorld games are never lost)


def _state(game_state, done: bool) -> EngineState:
    commands = tuple(c for c in game_state["admissible_commands"] if c != HELP)
    return EngineState(str(game_state.feedback), commands, bool(game_state["won"]), bool(done))


def _new_stack():
    """``PddlEnv`` + ``AlfredDemangler`` + ``AlfredInfos`` (``AlfredTWEnv.init_env``'s stack)."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv

    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    return AlfredInfos(AlfredDemangler(PddlEnv(infos), shuffle=False))


# Engine stacks of closed engines, reused by new ones. Each stack owns a private copy of
# fast-downward's library (~33 MB) that cannot be unloaded: after a dlclose, a later dlopen of
# another copy segfaults (observed with textworld 1.7.0). So stacks are recycled, never freed; the
# process holds at most as many copies as engines ever open at once.
_FREE_STACKS: list = []


class AlfredEngine:
    """One ALFWorld game at a time; loading a game is skipped when it is already loaded."""

    def __init__(self, cache: EngineCache) -> None:
        with _ENGINE_LOCK:
            self._env = _FREE_STACKS.pop() if _FREE_STACKS else _new_stack()
        self._cache = cache
        self.game_file: str | None = None
        self._plan: tuple[str, ...] | None = None  # a plan from the current state, if known

    def reset(self, game_file: str) -> EngineState:
        self._plan = None
        with _engine_call(self._cache):
            if game_file != self.game_file:
                self.game_file = None  # stays unset if load fails half-way
                self._env.load(game_file)
                self.game_file = game_file
            return _state(self._env.reset(), done=False)

    def step(self, command: str) -> EngineState:
        # Playing a known plan's next step leaves the rest of it a plan from the new state.
        plan, self._plan = self._plan, None
        with _engine_call(self._cache):
            game_state, _, done = self._env.step(command)
        if plan and command == plan[0]:
            self._plan = plan[1:]
        return _state(game_state, done)

    def plan(self) -> tuple[str, ...]:
        """The planner's commands from the current state to the goal; () when it finds none.

        ``PddlState.replan`` is what ``PddlEnv`` returns as ``policy_commands``; it names
        entities through ``_entity_infos``, which ``AlfredDemangler`` renamed ("apple 1").
        """
        if self.game_file is None:
            raise RuntimeError("AlfredEngine.plan before a successful reset")
        with _engine_call(self._cache):
            pddl = self._env.unwrapped
            key = (self.game_file, hash(frozenset(pddl._pddl_state.facts)))
            plan = self._plan if self._plan is not None else self._cache.plan(key)
            if plan is None:
                self._cache.plan_misses += 1
                plan = tuple(pddl._pddl_state.replan(pddl._entity_infos))
            elif self._plan is None:
                self._cache.plan_hits += 1
            self._cache.remember_plan(key, plan)
            self._plan = plan
        return plan

    def close(self) -> None:
        """Hand the engine stack (and its fast-downward library) back for reuse."""
        with _ENGINE_LOCK:
            if self._env is not None:
                _FREE_STACKS.append(self._env)
                self._env = None
            self.game_file, self._plan = None, None
