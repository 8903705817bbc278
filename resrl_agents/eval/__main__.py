"""``python -m resrl_agents.eval env=math model.path=CKPT n=16`` (or ``checkpoints=[A,B]``,
or ``policy=openai policy.base_url=URL policy.model=NAME``); writes ``output_dir/report.json``.
``mode=interactive`` plays episodes in the terminal instead (as ``python -m resrl_agents.play``)."""

import hydra
from omegaconf import DictConfig, OmegaConf

from resrl_agents.config.eval_schema import register_eval_configs
from resrl_agents.eval.interactive_ui import run_interactive
from resrl_agents.eval.report import format_summary
from resrl_agents.eval.runner import run_eval

register_eval_configs()


@hydra.main(version_base="1.3", config_path="../config", config_name="eval")
def main(cfg: DictConfig) -> None:
    if cfg.mode not in ("report", "interactive"):
        raise ValueError(f"mode must be report or interactive, got {cfg.mode!r}")
    if cfg.mode == "interactive":
        run_interactive(OmegaConf.to_object(cfg))
        return
    report = run_eval(OmegaConf.to_object(cfg))
    print(format_summary(report))


if __name__ == "__main__":
    main()
