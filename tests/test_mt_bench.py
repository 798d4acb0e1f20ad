"""MT-Bench protocol with a stub judge (no strong judge runs here)."""

from hermes3.eval.mt_bench import answer_questions, judge_prompts, judge_request, load_questions, parse_rating, score


def test_questions_and_references():
    qs = load_questions()
    assert len(qs) == 80 and all(len(q["turns"]) == 2 for q in qs)
    assert sum(q["reference"] is not None for q in qs) == 30


def test_protocol_with_stub_judge():
    qs = load_questions()[:6] + [q for q in load_questions() if q["category"] == "math"][:2]
    answers = answer_questions(lambda msgs: f"answer to {len(msgs)} messages", qs)
    assert answers[qs[0]["question_id"]] == ["answer to 1 messages", "answer to 3 messages"]
    seen = []

    def judge(system, user):
        seen.append(user)
        return "Good. Rating: [[7]]" if "### User:" not in user else "Meh [[4.5]]"

    df, summary = score(judge, qs, answers)
    assert summary == {"turn_1": 7.0, "turn_2": 4.5, "mt_bench": 5.75, "unparsed": 0}
    assert len(df) == 16
    math_q = qs[-1]
    system, user = judge_request(math_q, answers[math_q["question_id"]], 1, judge_prompts())
    assert math_q["reference"][0] in user and "[The Start of Reference Answer]" in user


def test_rating_parsing():
    assert parse_rating("Rating: [[10]]") == 10.0 and parse_rating("[[6.5]]") == 6.5
    assert parse_rating("score [3]") == 3.0 and parse_rating("none") is None
