"""``python -m resrl_agents.eval env=math model.path=CKPT n=16`` (or ``checkpoints=[A,B]``,
or ``policy=openai policy.base_url=URL policy.model=NAME``); writes ``output_dir/report.json``.
``mode=interactive`` plays episodes in the terminal instead (as ``python -m resrl_agents.play``)."""

import hydra

from resrl_agents.config.cli import user_errors
from resrl_agents.config.eval_schema import EvalConfig, register_eval_configs
from resrl_agents.eval.interactive_ui import run_interactive
from resrl_agents.eval.report import format_summary
from resrl_agents.eval.runner import run_eval

register_eval_configs()


@hydra.main(version_base="1.3", config_path="../config", config_name="eval")
@user_errors
def main(cfg: EvalConfig) -> None:
    if cfg.mode == "interactive":
        run_interactive(cfg)
        return
    report = run_eval(cfg)
    print(format_summary(report, cfg.output_dir))


if __name__ == "__main__":
    main()
