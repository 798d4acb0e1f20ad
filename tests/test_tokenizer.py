"""hermes3.format.tokenizer: Hermes tokens are single tokens; the Llama 3 tiktoken file loads exactly."""

import pytest
from corpus import corpus

from conftest import LLAMA3_TIKTOKEN, need
from hermes3.format.chat import render
from hermes3.format.tokenizer import HERMES_TOKENS, TAG_TOKENS, build_tokenizer, load_tokenizer


@pytest.mark.parametrize("fixture", ["tiny_tok", "llama3_tok"])
def test_hermes_tokens_are_single_and_tags_survive_skip_special(fixture, request):
    tok = request.getfixturevalue(fixture)
    for t in HERMES_TOKENS:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    ids = tok.encode("<|im_start|>assistant\n<tool_call>\n{}\n</tool_call><|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\n<tool_call>\n{}\n</tool_call>"
    assert tok.eos_token == "<|im_end|>"


def test_llama3_tiktoken_matches_tiktoken_and_keeps_vocab_size(llama3_tok):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from hermes3.format.tokenizer import _LLAMA3_PATTERN

    enc = tiktoken.Encoding("llama3", pat_str=_LLAMA3_PATTERN,
                            mergeable_ranks=load_tiktoken_bpe(str(need(LLAMA3_TIKTOKEN))), special_tokens={})
    texts = [render(c["messages"], c["tools"]).replace("<|im_start|>", "").replace("<|im_end|>", "")
             for c in corpus()[:20]]
    for t in texts + ["  leading spaces\n\n\ttabs  ", "数字 12345 ✓ émigré"]:
        for tag in TAG_TOKENS:
            t = t.replace(tag, "")
        assert llama3_tok.encode(t, add_special_tokens=False) == enc.encode(t)
    assert len(llama3_tok) == 128256
    assert llama3_tok.convert_tokens_to_ids("<|begin_of_text|>") == 128000
    assert llama3_tok.convert_tokens_to_ids("<|eot_id|>") == 128009
    assert 128000 <= llama3_tok.convert_tokens_to_ids("<|im_start|>") < 128256


def test_hf_folder_round_trip_adds_missing_tokens(tmp_path, caplog):
    plain = build_tokenizer(["hello world"] * 20, vocab_size=300)
    plain.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.chat_template == plain.chat_template and len(again) == len(plain)
    # A tokenizer without the Hermes tokens gets them, and the log says to resize embeddings.
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.add_tokens(["a"])
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="a").save_pretrained(tmp_path / "bare")
    with caplog.at_level("WARNING"):
        tok = load_tokenizer(tmp_path / "bare")
    assert all(len(tok.encode(t, add_special_tokens=False)) == 1 for t in HERMES_TOKENS)
    assert "resize_token_embeddings" in caplog.text
