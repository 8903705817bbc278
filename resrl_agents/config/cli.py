"""What every entry point (train, sft, eval, play, serve) does with its Hydra config and with
the user's mistakes.

``@user_errors`` goes between ``@hydra.main`` and the task function: the function gets the typed
config (``to_config``), and a :class:`ConfigError` raised anywhere in the run is printed as one
``error: ...`` message on stderr (exit status 2) instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import sys
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from resrl_agents.config.errors import ConfigError

EXIT_CONFIG_ERROR = 2


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Messages for keys of schema (dataclass) nodes that their schema does not have.

    Hydra lets ``+trainer.step=1`` add a key to a structured node, and ``OmegaConf.to_object``
    then drops it: a misspelling would silently do nothing. Free-form dicts (``env.kwargs``)
    are not checked.
    """
    problems = []
    schema = OmegaConf.get_type(cfg)
    fields = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
    for key in cfg.keys():
        full = f"{prefix}{key}"
        if fields is not None and key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            problems.append(f"{full} is not a config key ({schema.__name__}); {hint}"
                            f"the keys of {prefix.rstrip('.') or 'the root'} are: {', '.join(fields)}")
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            problems += unknown_keys(node, f"{full}.")
    return problems


def to_config(cfg: DictConfig) -> Any:
    """The typed config (schema dataclasses) of a composed Hydra config; unknown keys refused."""
    problems = unknown_keys(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
    return OmegaConf.to_object(cfg)


def user_errors(main: Callable[[Any], Any]) -> Callable[[DictConfig], Any]:
    """Wrap an entry point's task function (see the module docstring)."""

    @functools.wraps(main)
    def run(cfg: DictConfig) -> Any:
        try:
            return main(to_config(cfg))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG_ERROR) from None

    return run
