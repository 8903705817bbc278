"""``python -m resrl_agents.sft env=math model=tiny trainer.steps=300``: supervised warm start."""

import hydra

from resrl_agents.config.cli import user_errors
from resrl_agents.config.schema import SFTConfig, register_configs
from resrl_agents.trainers.recipe import run_recipe
from resrl_agents.trainers.sft import SFTRecipe

register_configs()


@hydra.main(version_base="1.3", config_path="config", config_name="sft")
@user_errors
def main(cfg: SFTConfig) -> None:
    run_recipe(SFTRecipe(cfg))


if __name__ == "__main__":
    main()
