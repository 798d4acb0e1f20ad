"""A seeded corpus of varied Hermes conversations for the format and mask tests.

Covers: several tool calls in one turn, consecutive tool messages, a user-supplied system
message, tools with no parameters, nested argument objects, unicode, an empty tools list,
plain ChatML, multi-turn tool use, string-encoded arguments, return types, union types.
"""

from __future__ import annotations

import json
import random

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "  City name, e.g. Paris  "},
        "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"},
        "days": {"type": ["integer", "string"], "description": "Forecast days"}},
        "required": ["city"]}}}
SEARCH = {"name": "search_db", "description": "Query the product database.",
          "parameters": {"type": "object", "properties": {
              "filters": {"type": "object", "description": "Nested filters",
                          "properties": {"price": {"type": "object"}}},
              "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags"},
              "limit": {"type": "integer"}}, "required": ["filters"]},
          "return": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Scores by id"}}
CLOCK = {"type": "function", "function": {"name": "now", "description": "Current UTC time.",
                                          "parameters": {"type": "object", "properties": {}}}}
CALC = {"type": "function", "function": {"name": "calc", "description": "Evaluate arithmetic.",
                                         "parameters": {"type": "object", "properties": {
                                             "expr": {"type": "string", "description": "Expression"},
                                             "exact": {"type": "boolean"}, "scale": {"type": "number"}}}}}
TOOLS = [WEATHER, SEARCH, CLOCK, CALC]

WORDS = ["weather", "Paris", "über", "naïve", "東京", "price", "🙂", "data", "quick", "fox", "résumé", "tea"]


def _call(rng, tool):
    fn = tool.get("function", tool)
    name = fn["name"]
    if name == "get_weather":
        args = {"city": rng.choice(["Paris", "東京", "São Paulo"]), "unit": rng.choice(["c", "f"])}
    elif name == "search_db":
        args = {"filters": {"price": {"lt": rng.randint(1, 99)}, "in_stock": True}, "tags": ["a", "ü"]}
    elif name == "now":
        args = {}
    else:
        args = {"expr": f"{rng.randint(1, 9)}*{rng.randint(1, 9)}", "exact": True}
    if rng.random() < 0.2:
        args = json.dumps(args)  # string-encoded arguments are rendered verbatim
    return {"type": "function", "function": {"name": name, "arguments": args}}


def _text(rng, n=6):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice([".", "?", "!"])


def corpus(n_random: int = 48, seed: int = 0) -> list[dict]:
    """Hand-written edge cases first, then seeded random conversations."""
    convs = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "tools": None},
        {"messages": [{"role": "system", "content": "You are Hermes."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello, I am Hermes."}], "tools": None},
        {"messages": [{"role": "user", "content": "Time?"},
                      {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": {}}}]},
                      {"role": "tool", "content": '{"name": "now", "content": "12:00"}'},
                      {"role": "assistant", "content": "It is noon."}], "tools": [CLOCK]},
        {"messages": [{"role": "system", "content": "Be brief ✓"}, {"role": "user", "content": "Weather in Paris and 東京?"},
                      {"role": "assistant", "tool_calls": [
                          {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                          {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "東京"}}}]},
                      {"role": "tool", "content": '{"name": "get_weather", "content": {"temp": 12}}'},
                      {"role": "tool", "content": '{"name": "get_weather", "content": {"temp": 20}}'},
                      {"role": "assistant", "content": "Paris 12, 東京 20."},
                      {"role": "user", "content": "Thanks"}], "tools": TOOLS},
        {"messages": [{"role": "user", "content": "Nothing to call."},
                      {"role": "assistant", "content": "Sure."}], "tools": []},
        {"messages": [{"role": "user", "content": "Search"},
                      {"role": "assistant", "tool_calls": [{"function": {"name": "search_db", "arguments": {
                          "filters": {"price": {"lt": 10, "currency": "€"}, "deep": {"a": [1, {"b": None}]}}}}}]},
                      {"role": "tool", "content": "[]"}], "tools": [SEARCH]},
    ]
    rng = random.Random(seed)
    for k in range(n_random):
        use_tools = k % 4 != 0
        tools = rng.sample(TOOLS, rng.randint(1, len(TOOLS))) if use_tools else None
        msgs = []
        if rng.random() < 0.4:
            msgs.append({"role": "system", "content": _text(rng, 8)})
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": _text(rng)})
            if tools and rng.random() < 0.6:
                calls = [_call(rng, rng.choice(tools)) for _ in range(rng.randint(1, 3))]
                msgs.append({"role": "assistant", "tool_calls": calls})
                for c in calls[: rng.randint(1, len(calls))]:
                    msgs.append({"role": "tool", "content": json.dumps(
                        {"name": c["function"]["name"], "content": _text(rng, 3)}, ensure_ascii=False)})
                if rng.random() < 0.2:
                    continue  # the conversation goes on with the user
            msgs.append({"role": "assistant", "content": _text(rng, rng.randint(3, 12))})
        convs.append({"messages": msgs, "tools": tools})
    return convs
