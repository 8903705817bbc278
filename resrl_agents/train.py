"""``python -m resrl_agents.train env=math algo=resrl model=tiny trainer.steps=20``"""

import hydra

from resrl_agents.config.cli import user_errors
from resrl_agents.config.schema import TrainConfig, register_configs
from resrl_agents.trainers.recipe import RLRecipe, run_recipe

register_configs()


@hydra.main(version_base="1.3", config_path="config", config_name="train")
@user_errors
def main(cfg: TrainConfig) -> None:
    run_recipe(RLRecipe(cfg))


if __name__ == "__main__":
    main()
