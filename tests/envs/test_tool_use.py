"""ToolUse-v0: the user's tools (modules, files, schemas), the episode rules, the bundled example,
tool messages in the agent loop (drift-free ``full`` layout) and a short training run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from gymnasium.error import ResetNeeded

import resrl_agents.envs  # noqa: F401  (registers the ids)
from resrl_agents.envs.checker import check_env
from resrl_agents.envs.tool_use import ToolUseEnv, load_tasks, load_tool_specs
from resrl_agents.envs.tool_use.answer import AnswerChecker, extract_answer
from resrl_agents.envs.tool_use.env import FORMAT_REMINDER
from resrl_agents.envs.tool_use.examples import EXAMPLE_TASKS, make_tasks
from resrl_agents.envs.verify import MathVerifier
from resrl_agents.rollout.agent_loop import observation_messages
from resrl_agents.tools import ToolCall, render_tool_calls

ENV_ID = "resrl_agents/ToolUse-v0"
REPO = Path(__file__).resolve().parents[2]
WAREHOUSE = ["list_warehouses", "find_item", "get_stock", "get_price", "calculator"]


def call(name: str, **arguments) -> str:
    return render_tool_calls([ToolCall(name, arguments)], "hermes")


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier()
    yield v
    v.close()


@pytest.fixture
def env(verifier):
    e = ToolUseEnv(verifier=verifier)
    yield e
    e.close()


USER_TOOLS = '''
import time
from resrl_agents.tools import tool
from resrl_agents.envs.tool_use.examples.warehouse import calculator  # imported: not collected

@tool
def capital(country: str) -> str:
    """Capital city of a (fictional) country.

    Args:
        country: Country name.
    """
    return {"Zembla": "Onhava", "Ruritania": "Strelsau"}[country]

@tool
def boom() -> str:
    """Always fails."""
    raise RuntimeError("the gizmo exploded")

@tool
def slow(seconds: float) -> str:
    """Answer after a while."""
    time.sleep(seconds)
    return "done"

@tool(inject=("task",))
def hint(task: dict) -> str:
    """A hint stored in the task's own row."""
    task["hints_used"] = task.get("hints_used", 0) + 1
    return f"{task['hint']} (hint {task['hints_used']})"

def helper(x):  # not a tool
    return x
'''

USER_TASKS = [
    {"id": "z1", "question": "What is the capital of Zembla?", "answer": "Onhava", "family": "geo",
     "hint": "starts with O", "calls": [[{"name": "capital", "arguments": {"country": "Zembla"}}]]},
    {"id": "r1", "question": "What is the capital of Ruritania?", "answer": "Strelsau",
     "hint": "starts with S"},
]


@pytest.fixture
def user_tools(tmp_path: Path) -> Path:
    path = tmp_path / "my_tools.py"
    path.write_text(textwrap.dedent(USER_TOOLS), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- tools


def test_tools_from_a_module_a_function_and_a_file(user_tools: Path):
    assert [t.name for t in load_tool_specs(["resrl_agents.envs.tool_use.examples.warehouse"])] == WAREHOUSE
    one = load_tool_specs("resrl_agents.envs.tool_use.examples.warehouse:get_price")
    assert [t.name for t in one] == ["get_price"]
    assert one[0].parameters["required"] == ["sku"] and "e.g." in one[0].parameters["properties"]["sku"]["description"]
    from_file = load_tool_specs([str(user_tools)])
    assert [t.name for t in from_file] == ["capital", "boom", "slow", "hint"]  # not calculator/helper
    assert "task" not in from_file[3].parameters["properties"]  # injected, hidden from the model
    both = load_tool_specs([str(user_tools), "resrl_agents.envs.tool_use.examples.warehouse"])
    assert len(both) == 9  # the calculator user_tools imports is the warehouse one, listed once
    dup = user_tools.parent / "dup.py"
    dup.write_text('from resrl_agents.tools import tool\n\n@tool\ndef calculator(expression: str) -> str:\n'
                   '    """Another calculator."""\n    return expression\n', encoding="utf-8")
    with pytest.raises(ValueError, match="two different tools are named 'calculator'"):
        load_tool_specs(["resrl_agents.envs.tool_use.examples.warehouse", str(dup)])
    with pytest.raises(ValueError, match="defines no @tool functions"):
        load_tool_specs(["resrl_agents.envs.tool_use.answer"])


def test_tools_from_a_json_schema_with_implementations(tmp_path: Path, user_tools: Path, verifier):
    schema = [{"type": "function", "function": {
        "name": "capital", "description": "Capital city of a country.",
        "parameters": {"type": "object", "properties": {"country": {"type": "string"}},
                       "required": ["country"]}}}]
    (tmp_path / "tools.json").write_text(json.dumps(schema), encoding="utf-8")
    spec = {"schema": str(tmp_path / "tools.json"), "impl": str(user_tools)}
    env = ToolUseEnv(tools=[spec], tasks=USER_TASKS, answer_match="exact", verifier=verifier)
    obs, info = env.reset(options={"task_id": "z1"})
    assert [t["function"]["name"] for t in info["tools"]] == ["capital"]
    assert info["tools"][0]["function"]["description"] == "Capital city of a country."  # from the file
    obs, reward, terminated, _, info = env.step(call("capital", country="Zembla"))
    assert obs == "<tool_response>\nOnhava\n</tool_response>" and not info["invalid"]
    obs, reward, terminated, _, _ = env.step("<answer>onhava</answer>")
    assert (reward, terminated) == (1.0, True)
    with pytest.raises(ValueError, match=r"write it as \{schema: .*tools.json, impl"):
        load_tool_specs([str(tmp_path / "tools.json")])
    (tmp_path / "empty_impl.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="tool 'capital' has no implementation"):
        load_tool_specs([{"schema": str(tmp_path / "tools.json"), "impl": str(tmp_path / "empty_impl.py")}])


# --------------------------------------------------------------------------- episodes


def test_a_correct_tool_call_sequence_wins(env):
    obs, info = env.reset(options={"task_id": "wh-0003"})  # 29 units of the copper hinge
    assert obs == info["task"] and "29 units of the copper hinge" in obs and info["family"] == "order_cost"
    assert [t["function"]["name"] for t in info["tools"]] == WAREHOUSE and "<answer>" in info["system_prompt"]
    obs, r, term, trunc, info = env.step("Let me look it up.\n" + call("find_item", query="copper hinge"))
    sku = json.loads(obs.split("\n")[1])[0]["sku"]
    assert (r, term, trunc, info["invalid"]) == (0.0, False, False, False)
    assert info["observation_messages"] == [{"role": "tool", "name": "find_item", "content": obs.split("\n")[1]}]
    obs, *_ = env.step(call("get_price", sku=sku))
    price = json.loads(obs.split("\n")[1])
    obs, *_ = env.step(call("calculator", expression=f"29 * {price}"))
    total = obs.split("\n")[1]
    obs, reward, terminated, truncated, info = env.step(f"The total is <answer>{total}</answer>")
    assert (obs, reward, terminated, truncated, info["won"]) == ("", 1.0, True, False, True)
    with pytest.raises(ResetNeeded):
        env.step("<answer>1</answer>")


def test_parallel_calls_answer_in_order_and_a_wrong_answer_loses(env):
    env.reset(options={"task_id": "wh-0005"})  # which warehouse has the most of FL-9541
    calls = [ToolCall("get_stock", {"sku": "FL-9541", "warehouse": w})
             for w in ("Kelby", "Dunmere", "Ashford", "Varnholm")]
    obs, _, _, _, info = env.step(render_tool_calls(calls, "hermes"))
    assert [m["content"] for m in info["observation_messages"]] == ["387", "66", "76", "19"]
    assert obs.count("<tool_response>") == 4
    _, reward, terminated, _, info = env.step("<answer>Dunmere</answer>")
    assert (reward, terminated, info["won"], info["gold"]) == (0.0, True, False, "Kelby")


def test_a_malformed_call_is_an_observation_with_the_invalid_flag(verifier):
    env = ToolUseEnv(format_penalty=0.1, verifier=verifier)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(
        '<tool_call>\n{"name": "get_stock", "arguments": {"sku": </tool_call>')
    assert info["invalid"] and not terminated and not truncated and reward == pytest.approx(-0.1)
    assert obs.startswith("<tool_response>\nError: tool call 1: invalid JSON at line 1 col")
    assert info["observation_messages"][0]["name"] == "parser"
    obs, reward, _, _, info = env.step("I think the answer is twelve.")  # no call, no answer
    assert obs == FORMAT_REMINDER and info["invalid"] and "observation_messages" not in info
    assert observation_messages(obs, info, {}) == [{"role": "user", "content": FORMAT_REMINDER}]


@pytest.mark.parametrize("arguments, message", [
    ({"sku": 7, "warehouse": "Kelby"}, "argument 'sku': 7 is not of type 'string'"),
    ({"sku": "FL-9541"}, "missing required argument 'warehouse'"),
    ({"sku": "FL-9541", "warehouse": "Kelby", "date": "today"}, "unknown argument 'date'"),
])
def test_a_schema_violation_is_the_tool_response(env, arguments, message):
    env.reset(seed=3)
    obs, reward, terminated, _, info = env.step(call("get_stock", **arguments))
    assert obs == f"<tool_response>\nError: invalid arguments for tool 'get_stock': {message}\n</tool_response>"
    assert info["invalid"] and info["tool_errors"] == 1 and not terminated and reward == 0.0


def test_raising_and_slow_tools_are_observations(user_tools: Path, verifier):
    env = ToolUseEnv(tools=[str(user_tools)], tasks=USER_TASKS, timeout_s=0.2, verifier=verifier)
    env.reset(options={"task_id": "r1"})
    obs, _, _, _, info = env.step(call("boom"))
    assert obs == "<tool_response>\nError: tool 'boom' raised RuntimeError: the gizmo exploded\n</tool_response>"
    assert not info["invalid"] and info["tool_errors"] == 1  # a runtime failure is not a format error
    tic = time.perf_counter()
    obs, *_ = env.step(call("slow", seconds=3.0))
    assert "Error: tool 'slow' timed out after 0.2 s" in obs and time.perf_counter() - tic < 2.0
    obs, *_ = env.step(call("nope"))
    assert "unknown tool 'nope'; available tools: capital, boom, slow, hint" in obs


def test_process_isolation_runs_importable_tools(verifier):
    env = ToolUseEnv(isolation="process", timeout_s=30.0, verifier=verifier)
    env.reset(options={"task_id": "wh-0000"})
    obs, *_ = env.step(env.expert_action())
    assert obs == "<tool_response>\n317\n</tool_response>"


def test_injected_task_state_lasts_one_episode(user_tools: Path, verifier):
    env = ToolUseEnv(tools=[str(user_tools)], tasks=USER_TASKS, verifier=verifier)
    for _ in range(2):
        env.reset(options={"task_id": "r1"})
        contents = [env.step(call("hint"))[0] for _ in range(2)]
        assert contents == ["<tool_response>\nstarts with S (hint 1)\n</tool_response>",
                            "<tool_response>\nstarts with S (hint 2)\n</tool_response>"]
    assert "hints_used" not in env.tasks[1].record  # the task list itself is never mutated


def test_truncated_at_max_turns_without_an_answer(verifier):
    env = ToolUseEnv(max_turns=3, verifier=verifier)
    env.reset(seed=1)
    results = [env.step(call("list_warehouses")) for _ in range(3)]
    assert [(r[2], r[3]) for r in results] == [(False, False), (False, False), (False, True)]
    assert results[-1][1] == 0.0 and not results[-1][4]["won"]


def test_a_call_beside_an_answer_runs_the_call_and_continues(env):
    env.reset(options={"task_id": "wh-0000"})
    obs, _, terminated, _, _ = env.step(call("list_warehouses") + "\n<answer>317</answer>")
    assert not terminated and "Kelby" in obs


def test_expert_replay_wins_on_every_family(verifier):
    for split in ("train", "test"):
        env = ToolUseEnv(split=split, verifier=verifier)
        families = set()
        for i in range(0, len(env.tasks), 3):
            env.reset(options={"index": i})
            for _ in range(env.max_turns):
                obs, reward, terminated, truncated, info = env.step(env.expert_action())
                if terminated or truncated:
                    break
            assert terminated and reward == 1.0 and info["won"], (env.tasks[i].task_id, info)
            assert env.expert_action() is None
            families.add(env.tasks[i].family)
        assert len(families) == 6


def test_a_task_without_a_plan_has_no_expert(user_tools: Path, verifier):
    env = ToolUseEnv(tools=[str(user_tools)], tasks=USER_TASKS, verifier=verifier)
    env.reset(options={"task_id": "z1"})
    assert env.expert_action() == call("capital", country="Zembla")
    env.reset(options={"task_id": "r1"})
    assert env.expert_action() is None


def test_check_env_on_user_tools(user_tools: Path, verifier):
    def factory(**kw):
        return ToolUseEnv(tools=[str(user_tools)], tasks=USER_TASKS, max_turns=3, **kw)

    check_env(lambda **kw: factory(**({"verifier": verifier} | kw)), actions=[call("capital", country="Zembla")])
    check_env(lambda **kw: factory(**({"verifier": verifier} | kw)), actions=["<answer>Onhava</answer>"])


# --------------------------------------------------------------------------- answers, tasks, data


@pytest.mark.parametrize("mode, gold, answer, won", [
    ("auto", "1200", "1,200", True), ("auto", "656.27", "656.270", True), ("auto", "82", "83", False),
    ("auto", "Kelby", " kelby. ", True), ("auto", "Kelby", "Kelby warehouse", False),
    ("contains", "Kelby", "The Kelby warehouse", True), ("contains", "Kel", "Kelby", False),
    ("exact", "0.5", "1/2", False), ("math", "0.5", "\\frac{1}{2}", True), ("math", "0.5", "1/3", False),
])
def test_answer_matching(verifier, mode, gold, answer, won):
    assert AnswerChecker(mode, verifier).check(gold, answer)[0] is won


def test_answer_extraction():
    assert extract_answer("<answer>1</answer> then <answer> 2 </answer>") == "2"
    assert extract_answer("no tags") is None


def test_task_files_are_checked_with_line_numbers(tmp_path: Path):
    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"id": "a", "question": "q?", "answer": 3}\n\n{"id": "b", "question": ""}\n')
    with pytest.raises(ValueError, match=r"tasks.jsonl:3: 'question' must be a non-empty string"):
        load_tasks(bad)
    bad.write_text('{"id": "a", "question": "q?", "answer": 3}\n{"id": "a", "question": "r?", "answer": 4}\n')
    with pytest.raises(ValueError, match="duplicate task ids"):
        load_tasks(bad)
    bad.write_text('{"question": "q?", "answer": 3, "calls": [{"name": "f", "arguments": []}]}\n')
    with pytest.raises(ValueError, match="calls step 1"):
        load_tasks(bad)
    bad.write_text('{"question": "q?", "answer": 3, "calls": [{"name": "f", "arguments": {"x": 1}}]}\n')
    (task,) = load_tasks(bad)
    assert (task.task_id, task.answer, task.calls) == ("task-1", "3", ((ToolCall("f", {"x": 1}),),))


def test_splits_are_disjoint_and_deterministic(verifier):
    train = ToolUseEnv(split="train", verifier=verifier).tasks
    test = ToolUseEnv(split="test", verifier=verifier).tasks
    assert len(train) + len(test) == 360 and not {t.task_id for t in train} & {t.task_id for t in test}
    assert 0.1 < len(test) / 360 < 0.3
    env = ToolUseEnv(verifier=verifier)
    assert env.reset(seed=11) == env.reset(seed=11)


def test_the_shipped_example_is_what_the_generator_writes():
    data, tasks = make_tasks.generate()
    assert make_tasks.DATA_PATH.read_text(encoding="utf-8") == data
    assert EXAMPLE_TASKS.read_text(encoding="utf-8") == tasks
    rows = [json.loads(line) for line in tasks.splitlines()]
    assert len(rows) == 360 and {r["family"] for r in rows} == set(make_tasks.FAMILIES)


def test_the_env_does_not_import_torch():
    code = ("import sys, gymnasium, resrl_agents.envs; e = gymnasium.make('resrl_agents/ToolUse-v0');"
            "e.reset(seed=0); e.step(e.unwrapped.expert_action()); e.close();"
            "print([m for m in ('torch', 'transformers', 'sympy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- rollout and training


class ExpertThenModel:
    """A policy for the drift test: in the first ``scripted[task]`` assistant turns of an episode it
    writes the env expert's message, tokenized once and closed by ``<|im_end|>`` as a model stops;
    afterwards (and for unlisted tasks) the real tiny model samples. So episodes hold expert tool
    calls, ``tool`` observations, then sampled turns (answers, reminders or more calls)."""

    def __init__(self, hf_policy, tokenizer, envs, scripted: dict[str, int]):
        self.hf, self.tok, self.envs, self.scripted = hf_policy, tokenizer, envs, scripted

    def generate(self, prompts, params):
        from resrl_agents.rollout.policy import Generation

        out: list = [None] * len(prompts)
        sample = []
        for i, prompt in enumerate(prompts):
            text = self.tok.decode(prompt)
            env = next(e.unwrapped for e in self.envs if f"user\n{e.unwrapped.task.question}<|im_end|>" in text)
            done_turns = text.count("<|im_start|>assistant") - 1
            if done_turns < self.scripted.get(env.task.task_id, 0) and env.expert_action():
                ids = self.tok(env.expert_action(), add_special_tokens=False)["input_ids"]
                ids = tuple(ids + [self.tok.convert_tokens_to_ids("<|im_end|>")])
                out[i] = Generation(ids, (0.0,) * len(ids), True)
            else:
                sample.append(i)
        for i, gen in zip(sample, self.hf.generate([prompts[i] for i in sample], params)):
            out[i] = gen
        return out


def test_full_layout_with_tool_messages_has_no_drift(tiny, verifier):
    from resrl_agents.rollout.agent_loop import rollout
    from resrl_agents.rollout.chat import ChatRenderer
    from resrl_agents.rollout.drift import drift_check
    from resrl_agents.rollout.policy import HFPolicy

    model, tok = tiny
    ids = ["wh-0002", "wh-0003", "wh-0005", "wh-0001", "wh-0004", "wh-0000"]
    scripted = {"wh-0002": 9, "wh-0003": 9, "wh-0005": 1, "wh-0001": 2, "wh-0004": 1}  # wh-0000: model only
    envs = [ToolUseEnv(max_turns=5, verifier=verifier) for _ in ids]
    policy = ExpertThenModel(HFPolicy(model, tok), tok, envs, scripted)
    renderer = ChatRenderer(tok)
    trajs = rollout(envs, [0] * len(ids), list(range(len(ids))), policy, renderer, history="full",
                    max_new_tokens=24, max_context_tokens=4096, temperature=1.0, top_p=1.0, seed=5,
                    options=[{"task_id": i} for i in ids])
    assert [t.task_id for t in trajs] == ids and not any(t.error for t in trajs)
    assert trajs[0].won and trajs[1].won and trajs[0].num_turns == 4  # full expert episodes
    roles = [[m["role"] for m in t.messages] for t in trajs]
    assert roles[0] == ["system", "user", "assistant", "tool", "assistant", "tool", "tool", "tool", "tool",
                        "assistant", "tool", "assistant"]
    assert all("tool" in r for r in roles[:5])
    sampled_after_tool = [t for t in trajs[2:5] if t.num_turns > scripted[t.task_id]]
    assert sampled_after_tool  # the tiny model generated after tool observations
    four = "".join(f"\n<tool_response>\n{n}\n</tool_response>" for n in (309, 386, 0, 19))
    assert f"<|im_start|>user{four}<|im_end|>" in trajs[0].turns[2].obs_text  # one user turn, 4 results
    assert trajs[0].tools is not None and len(trajs[0].tools) == 5
    report = drift_check(trajs, renderer)
    assert report.checked == len(ids) and report.drift_rate == 0.0
    for t in trajs:  # stored ids decode to exactly the template's rendering of the messages
        text = renderer.render(list(t.messages), add_generation_prompt=False, tools=list(t.tools))
        assert text.startswith(renderer.decode(t.token_ids()))


def test_sft_expert_chats_are_the_rollout_messages_with_tools(tiny, verifier):
    """SFT's expert chats carry the same tool messages and tool schemas as a rollout, so warm
    start and RL see the same tokens."""
    _, tok = tiny
    from resrl_agents.trainers.sft import expert_conversations, tokenize_conversation

    ((conv, conv_tools),) = expert_conversations(ENV_ID, {}, 1, seed=4)
    env = ToolUseEnv(verifier=verifier)
    obs, info = env.reset(seed=4)
    as_tools = [{"role": "system", "content": info["system_prompt"]}, {"role": "user", "content": obs}]
    while (action := env.expert_action()) is not None:
        as_tools.append({"role": "assistant", "content": action})
        obs, _, terminated, truncated, step_info = env.step(action)
        if not (terminated or truncated):
            as_tools += observation_messages(obs, step_info, info)
    assert conv == as_tools and conv_tools == info["tools"]
    assert any(m["role"] == "tool" for m in conv)
    ids, mask = tokenize_conversation(tok, conv, conv_tools)
    text = tok.decode(ids)
    assert "<tools>" in text and '"name": "' + info["tools"][0]["function"]["name"] + '"' in text
    assert tok.decode([i for i, m in zip(ids, mask) if m]).count("<|im_end|>") == sum(m["role"] == "assistant" for m in conv)


@pytest.mark.slow
def test_train_two_steps_on_the_bundled_tools(tmp_path: Path):
    from resrl_agents.trainers.metrics import read_metrics

    cmd = [sys.executable, "-m", "resrl_agents.train", "env=tools", "model=tiny", "trainer.steps=2",
           "trainer.num_threads=1", "trainer.progress=false", f"trainer.output_dir={tmp_path}",
           f"model.cache_dir={tmp_path / 'cache'}", "rollout.prompts_per_step=2", "rollout.group_size=2",
           "rollout.max_new_tokens=24", "rollout.max_context_tokens=2048", "env.kwargs.max_turns=2"]
    tic = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert time.perf_counter() - tic < 60
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["rollout/drift_rate"] == 0.0 and r["rollout/env_errors"] == 0.0
        assert any(k.startswith("rollout/success/") for k in r)
    assert (tmp_path / "checkpoints" / "step_000002" / "model.safetensors").exists()
