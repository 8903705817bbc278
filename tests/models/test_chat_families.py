"""Models with their own chat templates (Llama-3.1, Gemma-3, Mistral v3, Qwen3 formats, see
``tests/chat_families.py``): exact renderings, turn-end and stop ids, the tool-call format read
from the template, the multi-turn rewrite check, and SFT tokenization on the rollout's path."""

from __future__ import annotations

import pytest

from chat_families import FAMILIES, TOOL_FORMATS, build_family, family_tokenizer
from resrl_agents.config.schema import ModelConfig
from resrl_agents.rollout.chat import ChatRenderer, TemplateRewriteError, resolve_tool_format
from resrl_agents.tools.parsers import parse_tool_calls
from resrl_agents.trainers.sft import tokenize_conversation

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": " Hello. "}, {"role": "user", "content": "2+2?"}]
LLAMA_HEAD = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
LLAMA_DATES = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
EXPECTED = {
    "llama3": (LLAMA_HEAD + LLAMA_DATES + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"  # trimmed
               "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    "gemma": ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"  # system merged into the first user turn
              "<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"),
    "mistral": "<s>[INST] Hi[/INST] Hello.</s>[INST] Be brief.\n\n2+2?[/INST]",  # system joins the last user turn
    "qwen3": ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello. "
              "<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"),
}
TOOL_TURNS = {  # the assistant's tool call and the tool result, as each family writes them
    "llama3": ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}'
               "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>"),
    "mistral": ('[/INST][TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call00001"}]</s>'
                '[TOOL_RESULTS] {"content": sunny, "call_id": "call00001"}[/TOOL_RESULTS]'),
    "qwen3": ('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
              "<|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    return request.param, ChatRenderer(family_tokenizer(request.param, ModelConfig()))


def test_templates_render_the_published_formats(family):
    name, renderer = family
    assert renderer.render(CHAT, add_generation_prompt=True) == EXPECTED[name]
    if name in TOOL_TURNS:
        chat = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call00001", "content": "sunny"}]
        assert TOOL_TURNS[name] in renderer.render(chat, add_generation_prompt=False, tools=[WEATHER])


def test_llama_preamble_and_tools_in_the_first_user_message(family):
    name, renderer = family
    if name != "llama3":
        pytest.skip("Llama-3.1 only")
    text = renderer.render([{"role": "user", "content": "Weather?"}], add_generation_prompt=True, tools=[WEATHER])
    assert text.startswith(LLAMA_HEAD + "Environment: ipython\n" + LLAMA_DATES + "<|eot_id|>")
    assert '"parameters": dictionary of argument name and its value}' in text
    assert text.index('"name": "get_weather"') < text.index("Weather?<|eot_id|>")


def test_turn_end_and_tool_format_come_from_the_template(family):
    name, renderer = family
    end = {"llama3": "<|eot_id|>", "gemma": "<end_of_turn>", "mistral": "</s>", "qwen3": "<|im_end|>"}[name]
    assert renderer.turn_end == (end, renderer.tokenizer.convert_tokens_to_ids(end))
    assert resolve_tool_format("auto", renderer) == TOOL_FORMATS[name]
    assert resolve_tool_format("mistral", renderer) == "mistral"
    with pytest.raises(ValueError, match="model.tool_format='xml'"):
        resolve_tool_format("xml", renderer)


def test_the_family_parser_reads_the_templates_tool_call(family):
    name, renderer = family
    if name not in TOOL_TURNS:
        pytest.skip("Gemma has no tool-call syntax of its own (prompted hermes)")
    text, _ = renderer.split_turn([{"role": "user", "content": "Weather?"}],
                                  {"role": "assistant", "content": "", "tool_calls": [CALL]}, [WEATHER])
    parsed = parse_tool_calls(text, TOOL_FORMATS[name])
    assert parsed.ok and [(c.name, c.arguments) for c in parsed.calls] == [("get_weather", {"city": "Paris"})]


def test_multiturn_check_refuses_only_rewriting_templates(family):
    name, renderer = family
    first = [{"role": "system", "content": "Solve it."}, {"role": "user", "content": "task"}]
    if name in ("llama3", "gemma"):
        renderer.check_multiturn(first)
        return
    # Qwen3 drops the earlier reasoning; Mistral v3 moves the system text to the last user turn
    with pytest.raises(TemplateRewriteError, match="window:<k>"):
        renderer.check_multiturn(first)
    if name == "mistral":  # without a system message Mistral keeps its earlier turns
        renderer.check_multiturn(first[1:])


def test_continuation_follows_the_generated_ids_even_when_the_template_trims_them(family):
    """A turn the template re-renders trimmed (Llama, Gemma, Mistral) keeps the generated ids; the
    context after it is the template's text after the turn end, and a cut turn gets the turn end."""
    name, renderer = family
    history = [{"role": "user", "content": "go"}]
    content, new = "  look \n", [{"role": "user", "content": "You see a desk."}]
    end_text, end_id = renderer.turn_end
    ids = renderer.encode(content) + [end_id]
    if name == "qwen3":  # even an empty <think> block on the last turn goes away once a user turn follows
        with pytest.raises(TemplateRewriteError, match="first change"):
            renderer.continuation(history, {"role": "assistant", "content": content}, ids, True, new)
        return
    stopped = renderer.continuation(history, {"role": "assistant", "content": content}, ids, True, new)
    cut = renderer.continuation(history, {"role": "assistant", "content": content}, ids[:-1], False, new)
    full = renderer.render(history + [{"role": "assistant", "content": content}] + new, add_generation_prompt=True)
    assert full.endswith(stopped) and cut == end_text + stopped
    assert renderer.assistant_content(ids, True) == content and renderer.assistant_content(ids[:-1], False) == content


def test_sft_tokenizes_like_a_rollout(family):
    """Mask 1 exactly on the model's text plus the turn end, for every template (none has
    {% generation %} blocks but the project's), tool calls in the family's own format."""
    name, renderer = family
    chat = [{"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL]} if name in TOOL_TURNS
            else {"role": "assistant", "content": "<tool_call>\n{}\n</tool_call>"},
            {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "Bye."}]
    tools = [WEATHER] if name in TOOL_TURNS else None
    if name in ("qwen3", "mistral"):  # tool calls and tool results do not alternate like user turns here
        chat = chat[:2]
    ids, mask = tokenize_conversation(renderer.tokenizer, chat, tools)
    learned = [i for i, m in zip(ids, mask) if m]
    expected = []
    for k, message in enumerate(chat):
        if message["role"] == "assistant":
            expected += renderer.encode(renderer.split_turn(chat[:k], message, tools)[0]) + [renderer.turn_end[1]]
    assert learned == expected
    assert renderer.decode(ids[: mask.index(1)]) == renderer.render(chat[:1], add_generation_prompt=True, tools=tools)


def test_load_policy_stops_at_every_eos_and_the_turn_end(tmp_path):
    """``model=hf``: the template is kept and generation stops at the generation config's eos ids
    plus the turn end (an old Llama-3 config listing only <|end_of_text|> still stops at <|eot_id|>)."""
    from transformers import GenerationConfig

    from resrl_agents.models import load_policy

    path = build_family("llama3", tmp_path / "llama3")
    model, tok = load_policy(ModelConfig(name="hf", path=str(path)))
    assert tok.chat_template == FAMILIES["llama3"][0]
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(FAMILIES["llama3"][5])
    GenerationConfig(eos_token_id=tok.convert_tokens_to_ids("<|end_of_text|>")).save_pretrained(path)
    model, tok = load_policy(ModelConfig(name="hf", path=str(path)))
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(["<|end_of_text|>", "<|eot_id|>"])


def test_a_template_less_model_falls_back_to_chatml_or_says_why_not(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from resrl_agents.models import load_policy
    from resrl_agents.models.common import use_project_template

    path = build_family("gemma", tmp_path / "gemma")
    tok = family_tokenizer("gemma", ModelConfig())
    tok.chat_template = None
    (path / "chat_template.jinja").unlink(missing_ok=True)
    tok.save_pretrained(path)
    with pytest.warns(UserWarning, match="no chat template"):
        model, tok = load_policy(ModelConfig(name="hf", path=str(path)))  # the tiny BPE has <|im_end|>
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")),
                                   unk_token="<unk>")
    with pytest.raises(ValueError, match="give it a chat template of its own"):
        use_project_template(model, bare)
