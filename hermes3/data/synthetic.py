"""Seeded, procedural Hermes-style tasks in the report's eight categories (Table 1).

No model is needed: each generator draws a task from small embedded fact tables and
templates, writes the reference answer in the Hermes format (``<SCRATCHPAD>``/
``<SOLUTION>``, ``<tool_call>``, ``<co: id>``, ``<UNIT_TEST>``, personas, JSON mode) and
attaches a check spec (``hermes3.data.checkers``) that verifies any response. A ~5M
parameter model can learn these patterns on a CPU in minutes, so SFT, DPO, FP8 and the
benchmarks later show real, measurable differences.

A ``Task`` is a whole conversation whose *last* assistant message is the checked answer:
training uses all of it; evaluation prompts with everything before it.

>>> t = generate("math", random.Random(0))
>>> from hermes3.data.checkers import check
>>> check(t.check, t.reference)
(True, 'ok')
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from hermes3.format.chat import assistant_text

CATEGORIES = ("general", "domain_expert", "math", "roleplay", "coding", "tool_use", "content_generation",
              "steering")

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Kenya": "Nairobi",
            "Peru": "Lima", "Norway": "Oslo", "Egypt": "Cairo", "Canada": "Ottawa", "Chile": "Santiago",
            "Greece": "Athens", "Poland": "Warsaw", "Brazil": "Brasilia", "India": "New Delhi",
            "Mexico": "Mexico City", "Ghana": "Accra", "Ireland": "Dublin", "Portugal": "Lisbon",
            "Sweden": "Stockholm", "Vietnam": "Hanoi"}
ELEMENTS = {"Hydrogen": "H", "Helium": "He", "Carbon": "C", "Nitrogen": "N", "Oxygen": "O", "Sodium": "Na",
            "Iron": "Fe", "Copper": "Cu", "Silver": "Ag", "Gold": "Au", "Lead": "Pb", "Tin": "Sn", "Zinc": "Zn",
            "Potassium": "K", "Calcium": "Ca", "Neon": "Ne"}
UNITS = [("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("hours", "minutes", 60),
         ("minutes", "seconds", 60), ("kilograms", "grams", 1000), ("days", "hours", 24)]
WORDS = ["river", "garden", "planet", "signal", "pocket", "silver", "window", "forest", "number", "letter",
         "rocket", "mirror", "butter", "carrot", "strawberry", "library", "teacher", "balloon"]
NAMES = ["Ada", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemi", "Luca"]
ITEMS = ["apples", "books", "coins", "stamps", "marbles", "pencils", "shells", "cards"]
TOPICS = ["the sea", "autumn", "a city at night", "mountains", "rain", "the moon", "a quiet library", "winter"]
THINGS = ["fruits", "colors", "animals", "tools", "planets", "instruments"]
THING_BANK = {"fruits": ["apple", "banana", "cherry", "mango", "pear", "plum"],
              "colors": ["red", "blue", "green", "yellow", "purple", "orange"],
              "animals": ["cat", "horse", "owl", "whale", "fox", "otter"],
              "tools": ["hammer", "saw", "wrench", "drill", "chisel", "level"],
              "planets": ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn"],
              "instruments": ["violin", "piano", "flute", "drum", "cello", "harp"]}
PERSONAS = [("Captain Mora", "a cheerful pirate captain", "Arr, fair winds!"),
            ("Professor Quill", "a precise old librarian", "Knowledge is a lantern."),
            ("Nova", "a friendly starship computer", "End of transmission."),
            ("Sir Bramble", "a polite knight", "For honour!")]
# An in-character first sentence per persona: a roleplay answer speaks as the persona throughout.
OPENERS = {"Captain Mora": "Arr, a fine question for a sailor, matey!", "Professor Quill": "Ah, let us consult the shelves.",
           "Nova": "Query received and processed.", "Sir Bramble": "Well met, good traveller, and gladly answered!"}
CITIES = ["Paris", "Tokyo", "Oslo", "Lima", "Cairo", "Dublin", "Hanoi", "Accra"]
STOCKS = ["ACME", "GLOBX", "INITEC", "UMBRA", "VANDL"]


@dataclass
class Task:
    """A conversation whose last assistant message is checked by ``check``."""

    category: str
    messages: list[dict]
    tools: list[dict] | None
    check: dict
    meta: dict = field(default_factory=dict)

    @property
    def prompt(self) -> list[dict]:
        return self.messages[:-1]

    @property
    def reference(self) -> str:
        return assistant_text(self.messages[-1])

    def to_record(self) -> dict:
        return {"category": self.category, "messages": self.messages, "tools": self.tools, "check": self.check,
                "meta": self.meta}


def _task(category, user, answer, check, system=None, **meta):
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return Task(category, msgs, None, check, meta)


# ----------------------------------------------------------------------------- categories


def _letters(w: str) -> str:
    return ", ".join(w)


def _fact(rng):
    """A simple question with a checkable answer (shared by several categories). Answers work
    the question out step by step before stating the result, as Hermes 3's answers do: the
    worked steps are what a small model can imitate (spelling a word out makes reversing and
    counting letters a copying task), and they make outputs longer than inputs, as in the
    report's mixture (69% output tokens, Table 1)."""
    # Long-answer kinds weigh more: they carry the output-token share of the report's mixture.
    kind = rng.choice(["capital", "reverse", "sort", "count"] + ["count_up", "times_table"] * 4)
    if kind == "count_up":
        step = rng.choice([1, 2, 3, 5])
        a = rng.randint(1, 40)
        b = a + step * rng.randint(8, 16)
        seq = ", ".join(map(str, range(a, b + 1, step)))
        by = "" if step == 1 else f" in steps of {step}"
        return (f"Count from {a} to {b}{by}.", f"Counting from {a} to {b}{by}: {seq}.", seq)
    if kind == "times_table":
        k, upto = rng.randint(2, 12), rng.choice([8, 10, 12])
        rows = "\n".join(f"{k} x {i} = {k * i}" for i in range(1, upto + 1))
        return (f"Write the multiplication table of {k} up to {k} x {upto}.",
                f"Here is the multiplication table of {k}:\n{rows}", f"{k} x {upto} = {k * upto}")
    if kind == "capital":
        c = rng.choice(sorted(CAPITALS))
        q = rng.choice(["What is the capital of {c}?", "Which city is the capital of {c}?",
                        "Name the capital city of {c}.", "Tell me the capital of {c}."]).format(c=c)
        return (q, f"{c} is a country, and its government sits in its capital city. "
                   f"The capital of {c} is {CAPITALS[c]}.", CAPITALS[c])
    if kind == "reverse":
        w = rng.choice(WORDS)
        return (f"Spell the word '{w}' backwards.", f"The letters of '{w}' are {_letters(w)}. Read from the last "
                f"letter to the first they are {_letters(w[::-1])}. So '{w}' backwards is '{w[::-1]}'.", w[::-1])
    if kind == "sort":
        nums = rng.sample(range(1, 60), rng.randint(3, 5))
        s = ", ".join(map(str, sorted(nums)))
        steps = " ".join(f"The {'smallest' if i == 0 else 'next'} is {n}." for i, n in enumerate(sorted(nums)))
        return (f"Sort these numbers in ascending order: {', '.join(map(str, nums))}.",
                f"I take the smallest number left each time. {steps} In ascending order: {s}.", s)
    w = rng.choice(WORDS)
    ch = rng.choice(sorted(set(w)))
    n = w.count(ch)
    at = [str(i + 1) for i, x in enumerate(w) if x == ch]
    return (f"How many times does the letter '{ch}' appear in '{w}'?",
            f"The letters of '{w}' are {_letters(w)}. The letter '{ch}' is at position{'s' if n != 1 else ''} "
            f"{', '.join(at)}. The letter '{ch}' appears {n} time{'s' if n != 1 else ''} in '{w}'.", f"appears {n} time")


def gen_general(rng):
    q, a, key = _fact(rng)
    return _task("general", q, a, {"kind": "contains", "all": [key]})


def gen_domain_expert(rng):
    if rng.random() < 0.25:
        el = rng.choice(sorted(ELEMENTS))
        return _task("domain_expert", f"What is the chemical symbol for {el}?",
                     f"{el} is a chemical element. Every element has a symbol of one or two letters, the first "
                     f"one a capital. The chemical symbol for {el} is {ELEMENTS[el]}.",
                     {"kind": "contains", "all": [f"is {ELEMENTS[el]}."]})
    if rng.random() < 0.2:
        el = rng.choice(sorted(ELEMENTS))
        return _task("domain_expert", f"Which element has the chemical symbol {ELEMENTS[el]}?",
                     f"A chemical symbol names one element. The symbol {ELEMENTS[el]} stands for {el}. "
                     f"The element with the symbol {ELEMENTS[el]} is {el}.", {"kind": "contains", "all": [f"is {el}."]})
    big, small, f = rng.choice(UNITS)
    x = rng.randint(2, 99)
    return _task("domain_expert", f"Convert {x} {big} to {small}.",
                 f"To convert {big} to {small}, multiply by the number of {small} in one {big[:-1]}. "
                 f"1 {big[:-1]} is {f} {small}, so {x} {big} is {x} * {f} = {x * f} {small}.",
                 {"kind": "number", "answer": x * f})


def gen_math(rng, steps: int | None = None):
    steps = steps or rng.randint(2, 3)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    x = rng.randint(3, 20)
    text, work = [f"{name} has {x} {item}."], [f"{name} starts with {x} {item}."]
    for _ in range(steps):
        op = rng.choice(["buy", "give", "double"] if x < 60 else ["give"])
        if op == "buy":
            b = rng.randint(2, 15)
            text.append(f"Then {name} buys {b} more.")
            work.append(f"{name} buys {b} more: {x} + {b} = {x + b}")
            x += b
        elif op == "give" and x > 2:
            c = rng.randint(1, x - 1)
            text.append(f"Then {name} gives away {c}.")
            work.append(f"{name} gives away {c}: {x} - {c} = {x - c}")
            x -= c
        else:
            text.append(f"Then the number of {item} doubles.")
            work.append(f"The {item} double: {x} * 2 = {x * 2}")
            x *= 2
    q = " ".join(text) + f" How many {item} does {name} have now?"
    work.append(f"So {name} has {x} {item} now.")
    a = "<SCRATCHPAD>\n" + "\n".join(work) + "\n</SCRATCHPAD>\n<SOLUTION>" + str(x) + "</SOLUTION>"
    return _task("math", q, a, {"kind": "number", "answer": x}, steps=steps)


def gen_roleplay(rng):
    name, persona, catch = rng.choice(PERSONAS)
    q, a, key = _fact(rng)
    system = (f"You are {name}, {persona}. Stay in character: begin every reply with '{name}:' "
              f"and end it with '{catch}'")
    return _task("roleplay", q, f"{name}: {OPENERS[name]} {a} {catch}", {"kind": "all", "checks": [
        {"kind": "constraints", "constraints": [{"type": "starts_with", "text": f"{name}:"},
                                                {"type": "ends_with", "text": catch}]},
        {"kind": "contains", "all": [key]}]}, system=system, plain=a)


def _code_template(rng):
    """(name, arg, description, body, tests) of a small function with a numeric parameter k,
    so the prompt space is large enough for held-out items."""
    k = rng.randint(2, 20)
    kind = rng.choice(["scale", "shift", "count_above", "repeat", "divisible", "sum_list", "reverse_text"])
    if kind == "scale":
        return (f"times_{k}", "xs", f"returns a list with every number multiplied by {k}", f"    return [x * {k} for x in xs]",
                [f"times_{k}([1, 2]) == [{k}, {2 * k}]", f"times_{k}([]) == []", f"times_{k}([-1]) == [{-k}]"])
    if kind == "shift":
        return (f"add_{k}", "xs", f"returns a list with {k} added to every number", f"    return [x + {k} for x in xs]",
                [f"add_{k}([1, 2]) == [{1 + k}, {2 + k}]", f"add_{k}([]) == []", f"add_{k}([-{k}]) == [0]"])
    if kind == "count_above":
        return (f"count_above_{k}", "xs", f"counts how many numbers in the list are greater than {k}",
                f"    return sum(1 for x in xs if x > {k})",
                [f"count_above_{k}([{k}, {k + 1}, {k + 5}]) == 2", f"count_above_{k}([]) == 0", f"count_above_{k}([0]) == 0"])
    if kind == "repeat":
        return (f"repeat_{k}", "s", f"returns the string repeated {k} times", f"    return s * {k}",
                [f"repeat_{k}('ab') == {'ab' * k!r}", f"repeat_{k}('') == ''", f"len(repeat_{k}('x')) == {k}"])
    if kind == "divisible":
        return (f"divisible_by_{k}", "n", f"returns True when the integer n is divisible by {k}", f"    return n % {k} == 0",
                [f"divisible_by_{k}({3 * k}) is True", f"divisible_by_{k}({k + 1}) is False", f"divisible_by_{k}(0) is True"])
    if kind == "sum_list":
        return ("sum_list", "xs", "returns the sum of a list of numbers",
                "    total = 0\n    for x in xs:\n        total += x\n    return total",
                ["sum_list([1, 2, 3]) == 6", "sum_list([]) == 0", "sum_list([-4, 4, 5]) == 5"])
    return ("reverse_text", "s", "returns the string reversed", "    return s[::-1]",
            ["reverse_text('abc') == 'cba'", "reverse_text('') == ''", "reverse_text('level') == 'level'"])


def gen_coding(rng, docstring: bool = False):
    name, arg, desc, body, tests = _code_template(rng)
    shown = rng.sample(tests, 2)
    ask = f"Write a Python function `{name}({arg})` that {desc}. Put the code in <SOLUTION> tags and tests in <UNIT_TEST> tags."
    doc = f'    """{desc[0].upper() + desc[1:]}."""\n' if docstring else ""
    code = f"def {name}({arg}):\n{doc}{body}"
    plan = f"<SCRATCHPAD>\nThe function `{name}` takes `{arg}` and {desc}.\n</SCRATCHPAD>\n"
    answer = plan + f"<SOLUTION>\n{code}\n</SOLUTION>\n<UNIT_TEST>\n" + "\n".join(f"assert {t}" for t in shown) + "\n</UNIT_TEST>"
    check = {"kind": "python", "tests": "\n".join(f"assert {t}" for t in tests)}
    if docstring:
        ask += " Give the function a docstring."
        check = {"kind": "all", "checks": [check, {"kind": "contains", "all": ['"""']}]}
    return _task("coding", ask, answer, check, function=name, docstring=docstring)


# --- tool use, JSON mode and RAG -------------------------------------------------------

TOOLS = {
    "get_weather": {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                                   "required": ["city"]}}},
    "convert_currency": {"type": "function", "function": {"name": "convert_currency", "description": "Convert money between currencies.",
                         "parameters": {"type": "object", "properties": {
                             "amount": {"type": "number", "description": "Amount to convert"},
                             "from_currency": {"type": "string", "description": "ISO code, e.g. USD"},
                             "to_currency": {"type": "string", "description": "ISO code, e.g. EUR"}},
                             "required": ["amount", "from_currency", "to_currency"]}}},
    "get_stock_price": {"type": "function", "function": {"name": "get_stock_price", "description": "Latest price of a stock.",
                        "parameters": {"type": "object", "properties": {"symbol": {"type": "string", "description": "Ticker"}},
                                       "required": ["symbol"]}}},
}
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF"]
AMOUNTS = [10, 20, 25, 50, 75, 100, 200, 500]


def _tool_request(rng):
    """A request that one tool call answers: (question, tool, arguments, tool result, final
    answer, key of the answer). Argument values come from small closed sets (8 cities, 5
    tickers, 5 currencies, 8 amounts), so each value is seen often; held-out requests are
    unseen combinations of phrasing, value and tool list (the data build drops any held-out
    prompt that occurs in training)."""
    name = rng.choice(sorted(TOOLS))
    if name == "get_weather":
        city = rng.choice(CITIES)
        temp = rng.randint(-5, 35)
        q = rng.choice(["What is the weather in {c} right now?", "How warm is it in {c} today?",
                        "Check the current weather in {c} for me.", "Is it cold in {c} at the moment?"]).format(c=city)
        return (q, name, {"city": city}, {"city": city, "temperature_c": temp},
                f"It is {temp} degrees Celsius in {city}.", str(temp))
    if name == "get_stock_price":
        sym = rng.choice(STOCKS)
        price = rng.randint(10, 500)
        q = rng.choice(["What is the current price of {s} stock?", "How much does one share of {s} cost now?",
                        "Look up the latest {s} share price."]).format(s=sym)
        return (q, name, {"symbol": sym}, {"symbol": sym, "price": price}, f"{sym} is trading at {price} dollars.",
                str(price))
    a, b = rng.sample(CURRENCIES, 2)
    amount = rng.choice(AMOUNTS)
    out = round(amount * rng.uniform(0.5, 1.5), 2)
    q = rng.choice(["Convert {n} {a} to {b}.", "How much is {n} {a} in {b}?"]).format(n=amount, a=a, b=b)
    return (q, name, {"amount": amount, "from_currency": a, "to_currency": b}, {"amount": out, "currency": b},
            f"{amount} {a} is {out} {b}.", str(out))


def _call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


def _result(name, content):
    return {"role": "tool", "content": json.dumps({"name": name, "content": content})}


def gen_tool_use(rng, distractors: int = 0):
    # Calls dominate the kinds: they are Hermes 3's flagship skill and the held-out tool-call
    # items. A "session" is several request -> call -> result -> answer rounds under one tool
    # system prompt (agentic use) that ends on a new request and its call: the ~350-token tool
    # prompt is paid once for 4-8 calls, so a CPU-sized budget trains enough calls for the
    # function to be chosen from the request, and its held-out form checks a call made with
    # earlier rounds in context.
    kind = rng.choice(["call", "call", "session", "session", "session", "session", "answer", "parallel",
                       "json_mode", "rag"])
    if kind == "session":
        rounds = [_tool_request(rng) for _ in range(rng.randint(4, 8))]
        msgs = []
        for q, name, args, result, answer, _ in rounds[:-1]:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "tool_calls": [_call(name, args)]},
                     _result(name, result), {"role": "assistant", "content": answer}]
        q, name, args = rounds[-1][:3]
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "tool_calls": [_call(name, args)]}]
        names = sorted({r[1] for r in rounds})
        return Task("tool_use", msgs, [TOOLS[n] for n in names],
                    {"kind": "tool_calls", "calls": [{"name": name, "arguments": args}]}, {"kind": kind})
    if kind in ("call", "answer"):
        q, name, args, result, answer, key = _tool_request(rng)
        names = sorted({name, *rng.sample(sorted(TOOLS), min(distractors + 1, len(TOOLS)))})
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "tool_calls": [_call(name, args)]}]
        if kind == "call":
            return Task("tool_use", msgs, [TOOLS[n] for n in names],
                        {"kind": "tool_calls", "calls": [{"name": name, "arguments": args}]}, {"kind": kind})
        msgs += [_result(name, result), {"role": "assistant", "content": answer}]
        return Task("tool_use", msgs, [TOOLS[n] for n in names], {"kind": "contains", "all": [key]}, {"kind": kind})
    if kind == "parallel":
        cities = rng.sample(CITIES, 2)
        msgs = [{"role": "user", "content": f"What is the weather in {cities[0]} and in {cities[1]}?"},
                {"role": "assistant", "tool_calls": [_call("get_weather", {"city": c}) for c in cities]}]
        calls = [{"name": "get_weather", "arguments": {"city": c}} for c in cities]
        return Task("tool_use", msgs, [TOOLS["get_weather"]], {"kind": "tool_calls", "calls": calls}, {"kind": kind})
    if kind == "json_mode":
        name, age, city = rng.choice(NAMES), rng.randint(18, 90), rng.choice(CITIES)
        schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                                   "city": {"type": "string"}},
                  "required": ["name", "age", "city"], "additionalProperties": False}
        system = ("You are a helpful assistant that answers in JSON. Here's the json schema you must adhere to:\n"
                  f"<schema>\n{json.dumps(schema)}\n</schema>")
        values = {"name": name, "age": age, "city": city}
        return _task("tool_use", f"{name} is {age} years old and lives in {city}. Give me this person as JSON.",
                     json.dumps(values), {"kind": "json", "schema": schema, "values": values}, system=system, kind=kind)
    # RAG with citations, in the layout of the report's Fig. 8
    docs = rng.sample(sorted(CAPITALS), 3)
    target = rng.randrange(3)
    context = "\n".join(f"- Document:{i + 1} Title: {c} Text: The capital of {c} is {CAPITALS[c]}."
                        for i, c in enumerate(docs))
    system = ("You are a conversational AI assistant that is provided a list of documents and a user query to answer "
              "based on information from the documents. You should always use grounded information in your responses, "
              "only answering from what you can cite in the documents. Cite all facts from the documents using "
              "<co: doc_id></co> tags.")
    c = docs[target]
    answer = f"<co: {target + 1}>The capital of {c} is {CAPITALS[c]}.</co>\nCited Documents: {target + 1}"
    return _task("tool_use", f"What is the capital of {c}?\n\nCONTEXT:\n{context}", answer,
                 {"kind": "citations", "doc_ids": [str(target + 1)], "answer": CAPITALS[c]}, system=system, kind="rag")


def gen_content_generation(rng):
    kind = rng.choice(["haiku", "list", "title"])
    if kind == "haiku":
        t = rng.choice(TOPICS)
        w = rng.sample(WORDS, 3)
        lines = [f"{t.capitalize()} waits", f"a {w[0]} and a {w[1]} drift", f"the {w[2]} is still"]
        return _task("content_generation", f"Write a haiku about {t}.", "\n".join(lines),
                     {"kind": "constraints", "constraints": [{"type": "lines", "n": 3}]})
    if kind == "list":
        thing, n = rng.choice(THINGS), rng.randint(3, 6)
        items = rng.sample(THING_BANK[thing], n)
        return _task("content_generation", f"List {n} {thing}, one per line as bullets.",
                     "\n".join(f"- {x}" for x in items), {"kind": "constraints", "constraints": [{"type": "bullets", "n": n}]})
    t = rng.choice(TOPICS)
    title = " ".join(w.capitalize() for w in f"notes on {t}".split())
    return _task("content_generation", f"Suggest a title for an essay about {t}, in Title Case.", title,
                 {"kind": "constraints", "constraints": [{"type": "title_case"}, {"type": "max_words", "n": 8}]})


def gen_steering(rng):
    q, a, key = _fact(rng)
    kind = rng.choice(["lowercase", "bullets", "keyword", "json"])
    if kind == "lowercase":
        return _task("steering", q, a.lower(), {"kind": "all", "checks": [
            {"kind": "constraints", "constraints": [{"type": "lowercase"}]}, {"kind": "contains", "all": [key]}]},
            system="Always answer in lowercase letters only.", plain="Sure! " + a)
    if kind == "bullets":
        n = rng.randint(2, 3)
        lines = [f"- {a}"] + [f"- {s}" for s in ["I hope this helps.", "Ask me anything else."][: n - 1]]
        return _task("steering", q, "\n".join(lines), {"kind": "all", "checks": [
            {"kind": "constraints", "constraints": [{"type": "bullets", "n": n}]}, {"kind": "contains", "all": [key]}]},
            system=f"Answer with exactly {n} bullet points, each starting with '- '.", plain=a)
    if kind == "keyword":
        word = rng.choice(["indeed", "certainly", "notably"])
        return _task("steering", q, f"{word.capitalize()}, {a[0].lower()}{a[1:]}", {"kind": "all", "checks": [
            {"kind": "constraints", "constraints": [{"type": "keyword", "word": word}]}, {"kind": "contains", "all": [key]}]},
            system=f"Always use the word '{word}' in your answer.", plain=a)
    return _task("steering", q, json.dumps({"answer": a}), {"kind": "all", "checks": [
        {"kind": "constraints", "constraints": [{"type": "json_object"}]}, {"kind": "contains", "all": [key]}]},
        system='Respond only with a JSON object of the form {"answer": "..."}.', plain=a)


GENERATORS = {"general": gen_general, "domain_expert": gen_domain_expert, "math": gen_math, "roleplay": gen_roleplay,
              "coding": gen_coding, "tool_use": gen_tool_use, "content_generation": gen_content_generation,
              "steering": gen_steering}


def generate(category: str, rng: random.Random) -> Task:
    """One task of ``category`` drawn with ``rng``."""
    if category not in GENERATORS:
        raise ValueError(f"unknown category {category!r}; known: {list(CATEGORIES)}")
    return GENERATORS[category](rng)
