"""report.json keys, PNG plots written and readable, no API key in the report."""

from __future__ import annotations

import json
import sys

import pytest

from resrl_agents.config.eval_schema import EvalConfig
from resrl_agents.eval.metrics import summarize
from resrl_agents.eval.report import FAMILY_PNG, PASS_AT_K_PNG, REPORT_JSON, RUN_KEYS, RunResult, build_report, \
    format_summary, wilson_interval, write_report
from resrl_agents.rollout.types import Trajectory, Turn

TOP_KEYS = {"version", "created", "env", "settings", "policy", "model", "plots", "notes", "runs"}
FAMILY_KEYS = {"tasks", "episodes", "success", "score", "episode_len", "pass_at_k"}
TASK_KEYS = {"task_id", "seed", "family", "n", "successes", "mean_score"}


def _run(name: str, wins: list[list[bool]]) -> RunResult:
    fams = ["pick", "clean", "heat"]
    trajs = [Trajectory(group_id=g, task_id=f"t{g}", seed=g, turns=(Turn((1,), (2,), (0.0,)),), reward=float(w),
                        terminated=True, truncated=False, family=fams[g % 3], won=w)
             for g, ws in enumerate(wins) for w in ws]
    return RunResult(name, f"/ckpt/{name}", summarize(trajs, n=len(wins[0])), 1.5)


def test_report_json_and_plots(tmp_path):
    mpimg = pytest.importorskip("matplotlib.image", reason="the plot extra is not installed")
    cfg = EvalConfig(n=4, num_tasks=3)
    cfg.policy.api_key = "sk-very-secret"
    runs = [_run("step_10", [[True, False, False, False], [False] * 4, [True] * 4]),
            _run("step_20", [[True, True, False, False], [True, False, False, False], [True] * 4])]
    report = build_report(cfg, runs)
    path = write_report(report, runs, tmp_path)
    assert path == tmp_path / REPORT_JSON
    text = path.read_text()
    assert "sk-very-secret" not in text
    data = json.loads(text)
    assert set(data) == TOP_KEYS
    assert data["settings"]["n"] == 4 and data["env"]["id"] == cfg.env.id
    assert [r["name"] for r in data["runs"]] == ["step_10", "step_20"]
    for r in data["runs"]:
        assert set(r) == set(RUN_KEYS)
        assert list(r["pass_at_k"]) == ["1", "2", "4"]
        assert set(r["families"]) == {"pick", "clean", "heat"}
        assert all(set(f) == FAMILY_KEYS for f in r["families"].values())
        assert all(set(t) == TASK_KEYS for t in r["tasks"])
    # step_20: c = (2, 1, 4) of 4 -> Avg@4 = (0.5 + 0.25 + 1) / 3
    assert data["runs"][1]["avg_at_n"] == runs[1].summary.avg_at_n == (0.5 + 0.25 + 1) / 3
    for name in (PASS_AT_K_PNG, FAMILY_PNG):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(png)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.01  # something was drawn, not a blank canvas
    table = format_summary(data, tmp_path)
    assert "step_10" in table and "avg@4" in table
    for col in ("return", "ep_len", "invalid", "trunc", "clipped", "tasks"):
        assert col in table.splitlines()[0]
    assert f"report: {tmp_path / REPORT_JSON}" in table and str(tmp_path / FAMILY_PNG) in table


def test_table_keeps_full_run_names():
    long = "runs/resrl-alfworld-qwen2.5-1.5b/checkpoints/step_000200"
    cfg = EvalConfig(n=2, num_tasks=2)
    report = build_report(cfg, [_run(long, [[True, False], [False, False]]), _run("b", [[True, True], [True, False]])])
    table = format_summary(report)
    assert long in table and table.splitlines()[2].startswith("b ")


def test_wilson_interval():
    # 0 of 10: centre (0 + 1.96²/20) / (1 + 1.96²/10) = 0.19208 / 1.38416 = 0.13877, half the same: [0, 0.2775]
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    lo, hi = wilson_interval(5, 10)  # symmetric around 0.5: 0.5 ± 1.96·sqrt(0.025 + 0.0096)/1.38416 = ± 0.2634
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_plots_can_be_turned_off(tmp_path):
    cfg = EvalConfig(n=2, plots=False)
    runs = [_run("a", [[True, False]])]
    write_report(build_report(cfg, runs), runs, tmp_path, plots=False)
    assert (tmp_path / REPORT_JSON).exists() and not (tmp_path / PASS_AT_K_PNG).exists()
    assert json.loads((tmp_path / REPORT_JSON).read_text())["plots"] == {}


def test_missing_matplotlib_is_a_clear_error_before_any_episode(tmp_path, monkeypatch):
    """matplotlib is the optional ``plot`` extra: without it, plots=true stops eval at once (no
    model loaded, no episode run) with the install command."""
    from resrl_agents.eval.runner import run_eval

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like to import
    cfg = EvalConfig(n=2, output_dir=str(tmp_path))
    runs = [_run("a", [[True, False]])]
    with pytest.raises(ImportError, match=r"resrl-agents\[plot\]"):
        write_report(build_report(cfg, runs), runs, tmp_path)
    fresh = EvalConfig(n=2, output_dir=str(tmp_path / "eval"))  # write_report left a report.json above
    with pytest.raises(ImportError, match=r"or set plots=false"):
        run_eval(fresh)
    assert not list(tmp_path.glob("**/episodes_*"))
