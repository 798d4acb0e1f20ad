"""hermes3.data.loaders: real data in, Hermes schema out; bad records counted, never lost."""

import json

import pytest

from conftest import DATA
from hermes3.data.loaders import from_openai, from_sharegpt, load_conversations
from hermes3.format.chat import ConversationError


def test_glaive_function_call_and_observation():
    convs, report = load_conversations(DATA / "toolcall_glaive_llamafactory" / "glaive_toolcall_en_demo.json")
    assert (report.read, report.kept) == (300, 300)
    c = convs[0]
    assert c["tools"][0]["name"] == "search_recipes"
    call = next(m for m in c["messages"] if "tool_calls" in m)
    assert call["tool_calls"][0]["function"] == {"name": "search_recipes",
                                                 "arguments": {"ingredients": ["chicken", "bell peppers", "rice"]}}
    tool = next(m for m in c["messages"] if m["role"] == "tool")
    wrapped = json.loads(tool["content"])
    assert wrapped["name"] == "search_recipes" and wrapped["content"]["recipes"][0]["name"].startswith("Chicken")


def test_hermes_function_calling_v1_records():
    convs, report = load_conversations(DATA / "hermes_function_calling" / "hermes_fc_v1_card_examples.jsonl")
    assert report.kept == 3
    tool_use = convs[0]
    assert tool_use["id"].startswith("753d8365") and tool_use["tools"][0]["function"]["name"] == "search_flights"
    assert tool_use["messages"][0]["role"] == "user"  # boilerplate system prompt regenerated from tools
    args = tool_use["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert args["flexible_cancellation"] is True  # Python literal True parsed
    assert tool_use["messages"][2]["content"].startswith('{"name": "search_flights", "content": {')
    json_mode = convs[1]
    assert json_mode["tools"] is None and json_mode["messages"][0]["role"] == "system"


def test_sharegpt_and_openai_shapes():
    c = from_sharegpt({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "q"},
                                         {"from": "gpt", "value": "a"}]})
    assert [m["role"] for m in c["messages"]] == ["system", "user", "assistant"]
    o = from_openai({"messages": [{"role": "user", "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}]},
                                  {"role": "assistant", "content": None, "tool_calls": [
                                      {"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}],
                     "tools": [{"type": "function", "function": {"name": "f", "description": "F", "parameters": {
                         "type": "object", "properties": {"a": {"type": "integer"}}}}}]})
    assert o["messages"][0]["content"] == "hello" and "content" not in o["messages"][1]
    with pytest.raises(ConversationError, match="content\\[0\\]"):
        from_openai({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    with pytest.raises(ConversationError, match="field 'from'"):
        from_sharegpt({"conversations": [{"from": "alien", "value": "x"}]})


def test_jsonl_and_hf_dataset_folder(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(5)] + [{"messages": [{"role": "wizard", "content": "x"}]}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    convs, report = load_conversations(tmp_path / "train.jsonl", on_error="skip")
    assert report.kept == 5 and sum(report.skipped.values()) == 1 and "read 6, kept 5, skipped 1" in str(report)
    # A folder goes through datasets.load_dataset, as a Hub id would.
    convs2, _ = load_conversations(str(tmp_path), on_error="skip")
    assert [c["messages"] for c in convs2] == [c["messages"] for c in convs]


def test_bad_json_line_names_file_and_line(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"messages": []}\n{oops\n')
    with pytest.raises(ValueError, match="x.jsonl:2"):
        load_conversations(f)


def test_none_fields_from_datasets_are_dropped_not_rendered():
    from hermes3.format.chat import render

    rec = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
           "tools": [{"name": "f", "description": "d", "return": None, "parameters": {"type": "object", "properties": {
               "a": {"type": "string", "description": None}}}}]}
    text = render(**{k: v for k, v in from_openai(rec).items() if k != "id"})
    assert "f(a: str) - d" in text and "None" not in text
    with pytest.raises(ConversationError, match=r"properties\.b"):
        from hermes3.format.chat import validate
        validate(rec["messages"], [{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"b": None}}}])
