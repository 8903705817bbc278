"""``python -m resrl_agents.serve [backend=vllm] model.path=CKPT serve.port=8000 [--api-key KEY]``:
an OpenAI-compatible server, ``serving/app.py`` (hf) or ``vllm serve`` (``serving/vllm_server.py``).
``--api-key KEY`` is short for ``serve.api_key=KEY`` (``$RESRL_API_KEY`` also works and keeps the
key out of the process list)."""

import sys

import hydra

from resrl_agents.config.cli import user_errors
from resrl_agents.config.eval_schema import ServeAppConfig, register_eval_configs
from resrl_agents.serving.app import serve
from resrl_agents.serving.vllm_server import serve_vllm

register_eval_configs()


def api_key_flag(argv: list[str]) -> list[str]:
    """Rewrite ``--api-key KEY`` / ``--api-key=KEY`` as the Hydra override ``serve.api_key=KEY``."""
    out, it = [], iter(argv)
    for arg in it:
        if arg == "--api-key":
            out.append(f"serve.api_key={next(it, '')}")
        else:
            out.append("serve.api_key=" + arg[10:] if arg.startswith("--api-key=") else arg)
    return out


@hydra.main(version_base="1.3", config_path="config", config_name="serve")
@user_errors
def main(app: ServeAppConfig) -> None:
    (serve_vllm if app.backend == "vllm" else serve)(app)


if __name__ == "__main__":
    sys.argv = [sys.argv[0]] + api_key_flag(sys.argv[1:])
    main()
