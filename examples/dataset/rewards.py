"""Reward functions for `env=dataset`, in TRL's reward_funcs convention."""
import re


def correct(completions, answer, **kwargs):
    """1.0 when the last number of the completion is the row's `answer` column."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(re.findall(r"-?\d+", t)[-1:] == [a]) for t, a in zip(texts, answer)]


def concise(completions, **kwargs):
    """Up to 0.2 for a short answer: 0.2 when empty, 0 from 100 characters on."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [0.2 * max(0.0, 1 - len(t) / 100) for t in texts]
