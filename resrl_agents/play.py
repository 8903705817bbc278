"""``python -m resrl_agents.play env=alfworld [policy=human | model.path=CKPT | policy=openai ...]``:
an episode at a time in the terminal (``eval/interactive_ui.py``)."""

import hydra
from omegaconf import DictConfig, OmegaConf

from resrl_agents.config.eval_schema import register_eval_configs
from resrl_agents.eval.interactive_ui import run_interactive

register_eval_configs()


@hydra.main(version_base="1.3", config_path="config", config_name="play")
def main(cfg: DictConfig) -> None:
    run_interactive(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
