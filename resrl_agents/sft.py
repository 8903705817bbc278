"""``python -m resrl_agents.sft env=math model=tiny trainer.steps=300``: supervised warm start."""

import hydra
from omegaconf import DictConfig, OmegaConf

from resrl_agents.config.schema import register_configs
from resrl_agents.trainers.recipe import run_recipe
from resrl_agents.trainers.sft import SFTRecipe

register_configs()


@hydra.main(version_base="1.3", config_path="config", config_name="sft")
def main(cfg: DictConfig) -> None:
    run_recipe(SFTRecipe(OmegaConf.to_object(cfg)))


if __name__ == "__main__":
    main()
