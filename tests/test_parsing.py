"""hermes3.format.parsing: tool calls as vLLM's hermes parser and Nous' code read them, tags, citations."""

from hermes3.format.parsing import parse_citations, parse_tags, parse_tool_calls


def test_json_calls_and_surrounding_text():
    p = parse_tool_calls('Sure.\n<tool_call>\n{"name": "a", "arguments": {"x": [1, 2]}}\n</tool_call>\n'
                         '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call>')
    assert p.tool_calls == [{"name": "a", "arguments": {"x": [1, 2]}}, {"name": "b", "arguments": {"y": 2}}]
    assert p.content == "Sure." and p.errors == []


def test_python_literal_fallback_as_in_hermes_data():
    p = parse_tool_calls("<tool_call>\n{'arguments': {'ok': True, 'city': 'Paris'}, 'name': 'f'}\n</tool_call>\n")
    assert p.tool_calls == [{"name": "f", "arguments": {"ok": True, "city": "Paris"}}]


def test_unterminated_last_call_still_parses():
    p = parse_tool_calls('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}')
    assert [c["name"] for c in p.tool_calls] == ["a", "b"]


def test_bad_blocks_are_reported_not_dropped():
    p = parse_tool_calls('<tool_call>{"name": </tool_call><tool_call>{"arguments": {}}</tool_call>'
                         '<tool_call>{"name": "c", "arguments": [1]}</tool_call>')
    assert p.tool_calls == [] and len(p.errors) == 3
    assert p.errors[0].startswith("tool_call 0:") and "'name'" in p.errors[1] and "(c)" in p.errors[2]


def test_no_calls():
    p = parse_tool_calls("just text")
    assert (p.content, p.tool_calls, p.errors) == ("just text", [], [])


def test_nested_reasoning_tags():
    text = ("<SCRATCHPAD><RESTATEMENT>task</RESTATEMENT><REASONING><THOUGHT_1>a</THOUGHT_1></REASONING>"
            "</SCRATCHPAD>\n<SOLUTION>print(1)</SOLUTION>\nbye")
    parts = parse_tags(text)
    assert [p.tag for p in parts] == ["SCRATCHPAD", "SOLUTION", None]
    assert [c.tag for c in parts[0].children] == ["RESTATEMENT", "REASONING"]
    assert parts[0].children[1].children[0].text == "a"
    assert parts[1].text == "print(1)" and parts[2].text == "bye"


def test_same_tag_nested_and_unclosed():
    parts = parse_tags("<PLAN>x<PLAN>y</PLAN>z</PLAN><THINKING>cut off")
    assert parts[0].tag == "PLAN" and parts[0].text == "x<PLAN>y</PLAN>z" and [(c.tag, c.text) for c in parts[0].children] == [(None, "x"), ("PLAN", "y"), (None, "z")]
    assert parts[1].tag == "THINKING" and parts[1].text == "cut off" and parts[1].closed is False


def test_citations():
    cites = parse_citations("A <co: 1>fact</co> and <co:2,5>two</co:2,5>. Cited Documents: 2")
    assert [(c.doc_ids, c.text) for c in cites] == [(["1"], "fact"), (["2", "5"], "two")]


def test_hostile_inputs_are_errors_not_crashes():
    p = parse_tool_calls("<tool_call>{'name': 'f', 'arguments': {{}: 1}}</tool_call><tool_call>" + "[" * 50000)
    assert p.tool_calls == [] and len(p.errors) == 2


def test_unclosed_non_reasoning_tag_is_text():
    parts = parse_tags("Use a List<T> here. <PLAN>do</PLAN>")
    assert [(p.tag, p.text) for p in parts] == [(None, "Use a List<T> here."), ("PLAN", "do")]
