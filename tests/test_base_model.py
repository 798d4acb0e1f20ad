"""The tiny base model: learns the plain text (held-out loss falls), deterministic, cached."""

import json

import pytest

from hermes3.core.config import ConfigError
from hermes3.train.base_model import BaseConfig, plain_texts, pretrain


@pytest.fixture(scope="module")
def data(smoke_data):
    return smoke_data


def test_pretraining_lowers_heldout_loss_and_is_deterministic(data, tmp_path):
    kw = dict(size="tiny-s", data=str(data), seq_len=64, batch_size=8, steps=40, lr=3e-3, warmup=5)
    a = pretrain(BaseConfig(**kw, out_dir=str(tmp_path / "a")), progress=False)
    m = json.loads((a / "metrics.json").read_text())
    assert m["heldout_loss_trained"] < m["heldout_loss_untrained"] - 1.0
    b = pretrain(BaseConfig(**kw, out_dir=str(tmp_path / "b")), progress=False)
    assert (a / "train_loss.json").read_text() == (b / "train_loss.json").read_text()
    # cached: a second call returns the same folder without training
    mtime = (a / "metrics.json").stat().st_mtime
    assert pretrain(BaseConfig(**kw, out_dir=str(tmp_path / "a")), progress=False) == a
    assert (a / "metrics.json").stat().st_mtime == mtime
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(a).config.num_hidden_layers == 2


def test_plain_text_has_no_chat_markup(data):
    docs = plain_texts(data)
    assert docs and not any("<|im_start|>" in d for d in docs)


def test_bad_size_and_missing_data(tmp_path):
    with pytest.raises(ConfigError, match="size must be one of 'tiny-s', 'tiny-m', 'tiny-l', got 'tiny-xl'"):
        pretrain(BaseConfig(size="tiny-xl", data=str(tmp_path)))
    with pytest.raises(ConfigError, match="no data build here .*run `hermes3 data build` first"):
        pretrain(BaseConfig(data=str(tmp_path)))
