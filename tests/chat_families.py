"""Tiny models whose tokenizers speak the published chat formats of four model families.

Each family is the tiny Qwen3 policy (``models/tiny.py``: offline BPE, seeded weights) with the
family's special tokens added and a Jinja chat template written here from the published prompt
formats, quirks included:

* ``llama3``: Llama-3.1. A system header is always written, with the default preamble
  ("Cutting Knowledge Date: December 2023", "Today Date: 26 Jul 2024"; "Environment: ipython"
  when tools are given); tools go into the first user message with the JSON call instruction;
  messages are trimmed; a tool call is one JSON ``{"name", "parameters"}``; tool results are
  ``ipython`` turns; turns end with ``<|eot_id|>``; eos ids <|end_of_text|>, <|eom_id|>, <|eot_id|>.
* ``gemma``: Gemma-3. No system role (its text is merged into the first user turn), roles must
  alternate, the assistant is ``model``, messages are trimmed, turns end with ``<end_of_turn>``;
  no tool-call syntax of its own; eos ids <eos>, <end_of_turn>.
* ``mistral``: Mistral v3 (``[INST]`` / ``[/INST]``). The system text joins the *last* user
  message and ``[AVAILABLE_TOOLS]`` sits before it; assistant text is trimmed and ends with
  ``</s>``; tool calls are ``[TOOL_CALLS] [{"name", "arguments", "id"}]`` (9-character ids);
  tool results are ``[TOOL_RESULTS] {"content", "call_id"}[/TOOL_RESULTS]``.
* ``qwen3``: Qwen3. ChatML with hermes tool calls; reasoning before ``</think>`` is dropped from
  assistant turns before the last user query, the last turn gets an (empty) ``<think>`` block.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig, Qwen3ForCausalLM

from resrl_agents.config.schema import ModelConfig
from resrl_agents.models.common import save_atomic
from resrl_agents.models.tiny import build_tiny_tokenizer, tiny_model_config

LLAMA3 = r"""{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if messages[0].role == 'system' %}
    {%- set system_message = messages[0].content | trim %}{%- set messages = messages[1:] %}
{%- else %}{%- set system_message = "" %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools %}{{- "Environment: ipython\n" }}{%- endif %}
{{- "Cutting Knowledge Date: December 2023\nToday Date: " + date_string + "\n\n" }}
{{- system_message + "<|eot_id|>" }}
{%- if tools %}
    {%- if not messages %}{{- raise_exception("tools need a first user message to go into") }}{%- endif %}
    {%- set first_user = messages[0].content | trim %}{%- set messages = messages[1:] %}
    {{- "<|start_header_id|>user<|end_header_id|>\n\n" }}
    {{- "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.\n\n' }}
    {%- for t in tools %}{{- t | tojson(indent=4) + "\n\n" }}{%- endfor %}
    {{- first_user + "<|eot_id|>" }}
{%- endif %}
{%- for message in messages %}
    {%- if message.tool_calls %}
        {%- if message.tool_calls | length != 1 %}{{- raise_exception("one tool call per message") }}{%- endif %}
        {%- set call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "' + call.name + '", "parameters": ' }}
        {%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}
        {{- "}<|eot_id|>" }}
    {%- elif message.role in ('tool', 'ipython') %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" + message.content + "<|eot_id|>" }}
    {%- else %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + message.content | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}
"""

GEMMA = r"""{{- bos_token }}
{%- if messages[0].role == 'system' %}
    {%- set prefix = messages[0].content + '\n\n' %}{%- set turns = messages[1:] %}
{%- else %}{%- set prefix = '' %}{%- set turns = messages %}{%- endif %}
{%- for message in turns %}
    {%- if (message.role == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- set role = 'model' if message.role == 'assistant' else message.role %}
    {{- '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + message.content | trim + '<end_of_turn>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<start_of_turn>model\n' }}{%- endif %}
"""

MISTRAL = r"""{%- if messages[0].role == 'system' %}
    {%- set system_message = messages[0].content %}{%- set turns = messages[1:] %}
{%- else %}{%- set turns = messages %}{%- endif %}
{%- set users = turns | selectattr('role', 'equalto', 'user') | list %}
{{- bos_token }}
{%- for message in turns %}
    {%- if message.role == 'user' %}
        {%- if tools and message == users[-1] %}
            {{- '[AVAILABLE_TOOLS] [' }}
            {%- for t in tools %}
                {%- set f = t.function if t.function is defined else t %}
                {{- '{"type": "function", "function": {"name": ' + f.name | tojson + ', "description": ' + (f.description or '') | tojson + ', "parameters": ' + f.parameters | tojson + '}}' }}
                {{- ', ' if not loop.last else '' }}
            {%- endfor %}
            {{- '][/AVAILABLE_TOOLS]' }}
        {%- endif %}
        {%- if message == users[-1] and system_message is defined %}
            {{- '[INST] ' + system_message + '\n\n' + message.content + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message.content + '[/INST]' }}
        {%- endif %}
    {%- elif message.tool_calls %}
        {{- '[TOOL_CALLS] [' }}
        {%- for tc in message.tool_calls %}
            {%- if tc.id is not defined or tc.id | length != 9 %}
                {{- raise_exception('Tool call IDs should be alphanumeric strings of length 9') }}
            {%- endif %}
            {%- set args = tc.function.arguments if tc.function.arguments is string else tc.function.arguments | tojson %}
            {{- '{"name": ' + tc.function.name | tojson + ', "arguments": ' + args + ', "id": "' + tc.id + '"}' }}
            {{- ', ' if not loop.last else '' }}
        {%- endfor %}
        {{- ']' + eos_token }}
    {%- elif message.role == 'assistant' %}
        {{- ' ' + message.content | trim + eos_token }}
    {%- elif message.role == 'tool' %}
        {{- '[TOOL_RESULTS] {"content": ' + message.content | string + ', "call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception('Only user, assistant and tool roles are supported, with an optional system first') }}
    {%- endif %}
{%- endfor %}
"""

QWEN3 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}{{- "\n" + tool | tojson }}{%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(last_query=messages | length - 1, searching=true) %}
{%- for message in messages[::-1] %}
    {%- if ns.searching and message.role == 'user' and not (message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.searching = false %}
        {%- set ns.last_query = messages | length - 1 - loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- set content = message.content if message.content is string else '' %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set reasoning = '' %}
        {%- if '</think>' in content %}
            {%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}
            {{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + content }}
        {%- endif %}
        {%- for tc in message.tool_calls or [] %}
            {%- set call = tc.function if tc.function is defined else tc %}
            {%- if loop.first and content or not loop.first %}{{- '\n' }}{%- endif %}
            {{- '<tool_call>\n{"name": "' + call.name + '", "arguments": ' }}
            {%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<tool_response>\n' + content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}
"""

# family -> (template, special tokens to add, bos, eos, pad, generation-config eos tokens)
FAMILIES = {
    "llama3": (LLAMA3, ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"],
               "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
               ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]),
    "gemma": (GEMMA, ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
              "<bos>", "<eos>", "<pad>", ["<eos>", "<end_of_turn>"]),
    "mistral": (MISTRAL, ["<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                          "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "<pad>"],
                "<s>", "</s>", "<pad>", ["</s>"]),
    "qwen3": (QWEN3, [], None, "<|im_end|>", "<|endoftext|>", ["<|im_end|>", "<|endoftext|>"]),
}
# the family's own format of an assistant message's tool calls (``model.tool_format=auto``)
TOOL_FORMATS = {"llama3": "llama3_json", "gemma": "hermes", "mistral": "mistral", "qwen3": "hermes"}


def family_tokenizer(family: str, cfg: ModelConfig):
    """The tiny BPE tokenizer with the family's special tokens, bos/eos/pad and chat template."""
    template, specials, bos, eos, pad, _ = FAMILIES[family]
    tok = build_tiny_tokenizer(cfg.vocab_size, cfg.max_position)
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.bos_token, tok.eos_token, tok.pad_token = bos, eos, pad
    tok.chat_template = template
    return tok


def build_family(family: str, out_dir: str | Path, cfg: ModelConfig | None = None) -> Path:
    """Save a tiny random-weight Qwen3 model with the family's tokenizer and generation config
    (several eos ids where the family has them) to ``out_dir``, a ``model=hf model.path`` folder."""
    cfg = cfg or ModelConfig()
    tok = family_tokenizer(family, cfg)
    stop_ids = tok.convert_tokens_to_ids(FAMILIES[family][5])
    config = tiny_model_config(cfg, len(tok), tok.pad_token_id, stop_ids[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=stop_ids if len(stop_ids) > 1 else stop_ids[0],
                                               pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id)
    return save_atomic(model, tok, out_dir)
