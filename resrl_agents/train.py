"""``python -m resrl_agents.train env=math algo=resrl model=tiny trainer.steps=20``"""

import hydra
from omegaconf import DictConfig, OmegaConf

from resrl_agents.config.schema import register_configs
from resrl_agents.trainers.recipe import RLRecipe, run_recipe

register_configs()


@hydra.main(version_base="1.3", config_path="config", config_name="train")
def main(cfg: DictConfig) -> None:
    run_recipe(RLRecipe(OmegaConf.to_object(cfg)))


if __name__ == "__main__":
    main()
