"""Envs never load torch or transformers (STYLE rule 6), checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import json, sys
import gymnasium
import resrl_agents.envs
light = "resrl_agents.envs.math" not in sys.modules  # registration is by entry-point string
env = gymnasium.make("resrl_agents/Math-v0")
obs, info = env.reset(seed=0)
reward = env.step("#### 82")[1]
env.close()
print(json.dumps({"light": light, "obs": obs, "reward": reward,
                  "loaded": sorted(m for m in ("torch", "transformers", "math_verify", "sympy")
                                   if m in sys.modules)}))
"""


def test_envs_do_not_import_torch():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["light"], "importing resrl_agents.envs must not import the env modules"
    assert result["obs"].startswith("What is") and result["reward"] in (0.0, 1.0)
    # the parent never parses: math-verify and sympy live in the verifier worker only
    assert result["loaded"] == [], f"loaded in the env process: {result['loaded']}"


PACKAGE_IMPORT = """
import json, sys
import gymnasium as gym
import resrl_agents  # the package alone registers the ids (README, "Use an env directly")
env = gym.make("resrl_agents/ALFWorld-v0", split="valid", max_turns=30)
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, step_info = env.step("<think>x</think><action>go to desk 1</action>")
env.close()
print(json.dumps({"obs": obs, "invalid": step_info["invalid"], "torch": "torch" in sys.modules}))
"""


def test_import_resrl_agents_registers_the_envs_without_torch():
    out = subprocess.run([sys.executable, "-c", PACKAGE_IMPORT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["obs"].startswith("You arrive at desk 1") and not result["invalid"]
    assert not result["torch"]
