"""See what ResRL did: the trainer's kept step, and ``python -m resrl_agents.inspect`` on it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from resrl_agents.rollout.types import Batch  # noqa: E402
from resrl_agents.config.schema import AlgoConfig
from resrl_agents.trainers.forward import ResRLSettings, score_batch  # noqa: E402
from resrl_agents.trainers.inspection import write_inspection  # noqa: E402


def _kept_step(tiny, out_dir, position):
    """A group like a 2-digit addition step: one right answer '#### 80', wrong ones sharing its
    prefix '#### ' then a wrong digit; scored, weighted and kept as the trainer keeps it."""
    model, tok = tiny
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 18 + 62?"}], tokenize=False,
                                     add_generation_prompt=True)
    answers = ["#### 80", "#### 80", "#### 73", "#### 86", "#### 81"]
    rows = [tok(prompt)["input_ids"] + tok(a + "<|im_end|>")["input_ids"] for a in answers]
    n_prompt = len(tok(prompt)["input_ids"])
    T = max(map(len, rows))
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    attn = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], attn[i, : len(r)] = torch.tensor(r), 1
    loss = attn.float() * (torch.arange(T) >= n_prompt)
    success = torch.tensor([True, True, False, False, False])
    batch = Batch(input_ids=ids, attention_mask=attn, loss_mask=loss, logp_sample=torch.zeros(len(rows), T),
                  reward=success.float(), seq_adv=torch.where(success, 1.2, -0.8), group_id=torch.full((5,), 3),
                  response_len=loss.sum(1).long(), success=success)
    settings = ResRLSettings.from_algo(AlgoConfig(resrl=True, rank=4, max_pos_tokens=4096, hidden_position=position))
    sc = score_batch(model, batch, micro_batch_size=2, temperature=1.0, device=torch.device("cpu"), resrl=settings,
                     group_seed={3: 0})
    batch.weight = sc.weight
    path = write_inspection(str(out_dir), 6, [], batch, sc.residual, sc.in_span, sc.stats, tok, vars(settings))
    return path, sc


@pytest.mark.parametrize("position", ["predicting", "own"])
def test_kept_step_holds_each_token_with_its_weight_and_span_flag(tiny, tmp_path, position):
    path, sc = _kept_step(tiny, tmp_path, position)
    assert path.name == "step_000007.json.gz"  # 1-based, like checkpoints
    record = json.load(gzip.open(path, "rt"))
    (group,) = record["groups"]
    assert group["weighted"] and group["n_in_span"] == int(sc.in_span.sum()) and record["settings"]["gate"] == "off_span"
    wrong = group["rows"][2]
    toks = [t for s in wrong["segments"] if "tokens" in s for t in s["tokens"]]
    spans = [f for s in wrong["segments"] if "tokens" in s for f in s["in_span"]]
    weights = [w for s in wrong["segments"] if "tokens" in s for w in s["weight"]]
    assert "".join(toks).startswith("#### 7") and not wrong["success"]
    first_wrong = "".join(toks).index("7")
    k = next(i for i in range(len(toks)) if sum(map(len, toks[: i + 1])) > first_wrong)  # the token holding '7'
    # the shared prefix '#### ' is on a positive's state: w_min; the wrong digit is in span only
    # when weighed by the state that predicts it (that state is the shared prefix's)
    assert all(spans[:k]) and all(w == pytest.approx(0.1) for w in weights[:k])
    assert spans[k] == (position == "predicting")


def test_inspect_cli_renders_terminal_html_and_histogram(tiny, tmp_path):
    _kept_step(tiny, tmp_path, "own")
    env = dict(os.environ, COLUMNS="200")
    out = subprocess.run([sys.executable, "-m", "resrl_agents.inspect", str(tmp_path), "--step", "7"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "group 3 · rank" in out.stdout and "#### 73" in out.stdout and "✓ r=+1.00" in out.stdout
    page = (tmp_path / "inspect" / "resrl_step_000007.html").read_text()
    assert page.count("text-decoration:underline") == json.load(
        gzip.open(tmp_path / "inspect" / "step_000007.json.gz", "rt"))["groups"][0]["n_in_span"]
    assert 'title="w=' in page and "<script" not in page
    svg = (tmp_path / "inspect" / "resrl_step_000007.svg").read_text()
    assert svg.startswith("<svg") and "What is 18 + 62?" in svg.replace("&#160;", " ")  # the terminal view, coloured
    png = tmp_path / "inspect" / "resrl_step_000007_hist.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run([sys.executable, "-m", "resrl_agents.inspect", str(tmp_path), "--step", "3"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "step 3 was not kept" in missing.stderr and "kept steps: 7" in missing.stderr
