"""hermes3.format.chat: byte parity with the official templates, golden bytes, validation errors."""

from __future__ import annotations

import copy
import sys

import pytest
from corpus import CLOCK, TOOLS, WEATHER, corpus

from conftest import DATA, OFFICIAL_TEMPLATE, hf_jinja_env, need
from hermes3.data.loaders import load_conversations
from hermes3.format.chat import HERMES_CHAT_TEMPLATE, ConversationError, render, render_pieces, validate

CASES = corpus()


def test_corpus_covers_the_required_cases():
    assert len(CASES) >= 50
    msgs = [c["messages"] for c in CASES]
    assert any(len(m.get("tool_calls", [])) >= 2 for ms in msgs for m in ms)  # several calls in one turn
    assert any(a["role"] == b["role"] == "tool" for ms in msgs for a, b in zip(ms, ms[1:]))  # consecutive tools
    assert any(ms[0]["role"] == "system" and c["tools"] for ms, c in zip(msgs, CASES))  # user system + tools
    assert any(c["tools"] == [] for c in CASES)  # empty tools list
    assert any(c["tools"] is None for c in CASES)  # plain ChatML


@pytest.mark.parametrize("gen", [False, True])
@pytest.mark.parametrize("k", range(len(CASES)))
def test_render_equals_official_template_and_hf_template(k, gen, official):
    from transformers.utils.chat_template_utils import render_jinja_template

    conv = CASES[k]
    ours = render(conv["messages"], conv["tools"], add_generation_prompt=gen, bos_token="<|begin_of_text|>")
    ref = official(copy.deepcopy(conv["messages"]), conv["tools"], add_generation_prompt=gen,
                   bos_token="<|begin_of_text|>")
    assert ours == ref
    (hf,), _ = render_jinja_template([conv["messages"]], tools=conv["tools"], chat_template=HERMES_CHAT_TEMPLATE,
                                     add_generation_prompt=gen, bos_token="<|begin_of_text|>")
    assert ours == hf


def test_real_records_render_like_official(official):
    convs, report = load_conversations(DATA / "toolcall_glaive_llamafactory" / "glaive_toolcall_en_demo.json")
    convs += load_conversations(DATA / "hermes_function_calling" / "hermes_fc_v1_card_examples.jsonl")[0]
    assert report.kept == 300
    for c in convs:
        assert render(c["messages"], c["tools"]) == official(c["messages"], c["tools"])


def test_tokenizer_apply_chat_template_gives_same_bytes(tiny_tok):
    for conv in CASES[:12]:
        got = tiny_tok.apply_chat_template(conv["messages"], tools=conv["tools"], tokenize=False,
                                           add_generation_prompt=True)
        assert got == render(conv["messages"], conv["tools"], add_generation_prompt=True)


def test_golden_bytes_tool_turns():
    msgs = [{"role": "user", "content": "Time?"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": {}}}] * 2},
            {"role": "tool", "content": "A"}, {"role": "tool", "content": "B"},
            {"role": "assistant", "content": "Noon."}]
    text = render(msgs, [CLOCK], add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a function calling AI model.")
    assert ('<tools> {"type": "function", "function": {"name": "now", "description": "now() - Current UTC time.\n\n", '
            '"parameters": {}}} </tools>Use the following') in text
    assert '"type": "object"}}\nFor each function call' in text  # the stray } of the official template
    assert text.endswith(
        "<|im_start|>user\nTime?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>\n'
        '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call><|im_end|>\n'
        "<|im_start|>tool\n<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n</tool_response>\n<|im_end|>"
        "<|im_start|>assistant\nNoon.<|im_end|>\n<|im_start|>assistant\n")


def test_golden_bytes_tool_description_quirks():
    text = render([{"role": "user", "content": "x"}], [WEATHER])
    assert ('"description": "get_weather(city: str, unit: str, days: Union[int,str]) - Get the current weather for '
            'a city.\n\n    Args:\n        city(str): City name, e.g. Paris        unit(str): Unit'
            '        days(Union[int,str]): Forecast days"') in text
    arr = render([{"role": "user", "content": "x"}], [TOOLS[1]])
    assert "tags: list[Union[]]" in arr and "-> dict[str, float]" in arr and "\n    Returns:\n        Scores by id" in arr


def test_plain_chatml_has_no_default_system_prompt():
    assert render([{"role": "user", "content": "a"}], bos_token="<s>", add_generation_prompt=True) == (
        "<s><|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n")


def test_trained_pieces_are_assistant_output_only():
    conv = CASES[3]
    trained = [t for t, tr in render_pieces(conv["messages"], conv["tools"]) if tr]
    assert trained == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "東京"}}\n</tool_call><|im_end|>',
        "Paris 12, 東京 20.<|im_end|>"]


def _tool(props):
    return {"name": "f", "description": "d", "parameters": {"type": "object", "properties": props}}


def test_official_template_recurses_on_null_type_and_we_raise_clearly():
    tools = [_tool({"n": {"type": ["integer", "null"]}})]
    msgs = [{"role": "user", "content": "x"}]
    env = hf_jinja_env()
    tpl = env.from_string(need(OFFICIAL_TEMPLATE).read_text())
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        with pytest.raises(RecursionError):
            tpl.render(messages=msgs, tools=tools)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(ConversationError, match=r"tools\[0\] \(f\)\.parameters\.properties\.n\.type\[1\]"):
        render(msgs, tools)


U, A = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}
CALL = {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": {}}}]}
BAD = [  # (messages, tools, message index, field)
    ([U, {"role": "robot", "content": "x"}], None, 1, "role"),
    ([U, {"role": "assistant"}], None, 1, "content"),
    ([U, {"role": "assistant", "content": 5}], None, 1, "content"),
    ([{"role": "system", "content": None}, U, A], None, 0, "content"),
    ([U, {"role": "tool", "content": "r"}], [CLOCK], 1, "role"),
    ([U, A, {"role": "system", "content": "late"}], None, 2, "role"),
    ([U, A, {"role": "assistant", "content": "again"}], None, 2, "role"),
    ([U, CALL], None, 1, "tool_calls"),
    ([U, {"role": "assistant", "tool_calls": "now()"}], [CLOCK], 1, "tool_calls"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}], [CLOCK], 1, "tool_calls[0].name"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "nope", "arguments": {}}}]}], [CLOCK], 1,
     "tool_calls[0].name"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "now"}}]}], [CLOCK], 1, "tool_calls[0].arguments"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": "{bad"}}]}], [CLOCK], 1,
     "tool_calls[0].arguments"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": {"x": {1, 2}}}}]}], [CLOCK], 1,
     "tool_calls[0].arguments"),
    ([U, {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": {"x": float("nan")}}}]}],
     [CLOCK], 1, "tool_calls[0].arguments"),
    ([U, {"role": "assistant", "content": "Let me check.", **{k: v for k, v in CALL.items() if k != "role"}}],
     [CLOCK], 1, "content"),
    ([U, CALL, {"role": "tool", "content": "a"}, {"role": "tool", "content": "b"}], [CLOCK], 3, "role"),
    ([U, {"role": "user", "content": "x", "reasoning": "secret"}], None, 1, "reasoning"),
    ([U, "not a dict"], None, 1, "message"),
    ([U, {"role": "tool", "content": "x", "tool_calls": [{"function": {"name": "now", "arguments": {}}}]}],
     [CLOCK], 1, "tool_calls"),
]


EMPTY = [  # what the official template renders, so we do too (an empty system prompt is a real probe)
    ([{"role": "system", "content": ""}, U, A], None),
    ([{"role": "system", "content": ""}, U], None),
    ([{"role": "system", "content": "   "}, {"role": "user", "content": ""}, {"role": "assistant", "content": ""}], None),
    ([{"role": "system", "content": ""}, U, CALL, {"role": "tool", "content": ""}, {"role": "assistant", "content": " "}],
     [CLOCK]),
]


@pytest.mark.parametrize("msgs,tools", EMPTY)
@pytest.mark.parametrize("gen", [False, True])
def test_empty_content_renders_like_official(msgs, tools, gen, official):
    assert render(msgs, tools, add_generation_prompt=gen) == official(msgs, tools, add_generation_prompt=gen)


def test_empty_system_prompt_golden_bytes():
    assert render([{"role": "system", "content": ""}, U]) == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"


@pytest.mark.parametrize("msgs,tools,index,field", BAD)
def test_malformed_conversations_name_message_and_field(msgs, tools, index, field):
    assert len(BAD) >= 15
    with pytest.raises(ConversationError) as e:
        validate(msgs, tools)
    assert (e.value.index, e.value.field) == (index, field)
    assert f"message {index}, field '{field}'" in str(e.value)


@pytest.mark.parametrize("tools,field", [
    ([{"name": "f", "parameters": {}}], "tools[0] (f).description"),
    ([{"description": "d"}], "tools[0].name"),
    ([_tool({}), _tool({})], "tools[1].name"),
    ([_tool({"x": {"type": "null"}})], "tools[0] (f).parameters.properties.x.type"),
    ([_tool({"x": {"type": "object", "additionalProperties": {"type": "any"}}})],
     "tools[0] (f).parameters.properties.x.additionalProperties.type"),
    ("not a list", "tools"),
])
def test_bad_tools_name_tool_and_field(tools, field):
    with pytest.raises(ConversationError) as e:
        validate([U, A], tools)
    assert e.value.field == field and e.value.index is None


def test_skip_counts_bad_records_by_reason():
    records = [{"messages": m, "tools": t} for m, t, _, _ in BAD] + [{"messages": [U, A]}]
    convs, report = load_conversations(records, on_error="skip")
    assert len(convs) == 1 and report.read == len(BAD) + 1 and sum(report.skipped.values()) == len(BAD)
    assert report.skipped["role: one of system, user, assistant, tool"] == 1
    with pytest.raises(ConversationError, match=r"^record 0: message 1, field 'role'"):
        load_conversations(records)
