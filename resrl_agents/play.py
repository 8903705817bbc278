"""``python -m resrl_agents.play env=alfworld [policy=human | model.path=CKPT | policy=openai ...]``:
an episode at a time in the terminal (``eval/interactive_ui.py``)."""

import hydra

from resrl_agents.config.cli import user_errors
from resrl_agents.config.eval_schema import EvalConfig, register_eval_configs
from resrl_agents.eval.interactive_ui import run_interactive

register_eval_configs()


@hydra.main(version_base="1.3", config_path="config", config_name="play")
@user_errors
def main(cfg: EvalConfig) -> None:
    run_interactive(cfg)


if __name__ == "__main__":
    main()
