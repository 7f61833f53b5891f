"""The random checkpoint writer produces real-format, loadable, deterministic checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitnet_backend.checkpoints import load_checkpoint
from bitnet_backend.checkpoints.safetensors_file import SafetensorsFile
from bitnet_backend.testing import (
    CHAT_TEMPLATE,
    build_config,
    main,
    tokenizer_size,
    write_checkpoint,
    write_hub_cache,
)

ODD_SHAPE = {
    "hidden_size": 72,
    "intermediate_size": 196,
    "num_attention_heads": 3,
    "num_key_value_heads": 1,
}


def file_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_seed_writes_identical_files(make_checkpoint, tmp_path: Path) -> None:
    again = write_checkpoint(tmp_path / "again")
    assert file_bytes(again) == file_bytes(make_checkpoint())


def test_other_seed_changes_weights_but_not_tokenizer(make_checkpoint) -> None:
    a, b = file_bytes(make_checkpoint()), file_bytes(make_checkpoint(seed=1))
    assert a["tokenizer.json"] == b["tokenizer.json"]
    assert a["model.safetensors"] != b["model.safetensors"]


def test_rewriting_single_file_as_shards_removes_the_stale_single_file(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "m")
    write_checkpoint(tmp_path / "m", shards=2)
    names = sorted(p.name for p in (tmp_path / "m").glob("model*"))
    assert names == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]


def test_2b_4t_config_is_the_real_shape() -> None:
    cfg = build_config("2b-4t")
    expected = {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "hidden_size": 2560,
        "intermediate_size": 6912,
        "num_hidden_layers": 30,
        "num_attention_heads": 20,
        "num_key_value_heads": 5,
        "vocab_size": 128256,
        "hidden_act": "relu2",
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "offline",
        },
    }
    assert {k: cfg[k] for k in expected} == expected


def test_online_mode_writes_float_master_weights_without_scales(make_checkpoint) -> None:
    for dtype, st_dtype in (("bfloat16", "BF16"), ("float32", "F32")):
        path = make_checkpoint(mode="online", dtype=dtype)
        cfg = json.loads((path / "config.json").read_text())
        assert cfg["quantization_config"]["quantization_mode"] == "online"
        assert cfg["quantization_config"]["linear_class"] == "autobitlinear"
        with SafetensorsFile(path / "model.safetensors") as st:
            assert not any(n.endswith("weight_scale") for n in st.tensors)
            assert st.tensors["model.layers.0.mlp.up_proj.weight"].dtype == st_dtype
            assert st.tensors["model.layers.0.mlp.up_proj.weight"].shape == (160, 64)


def test_packed_codes_are_uniform_ternary(make_checkpoint) -> None:
    from bitnet_backend.checkpoints.ternary import unpack_ternary

    with load_checkpoint(make_checkpoint()) as ck:
        w = unpack_ternary(ck.tensor("model.layers.0.mlp.gate_proj.weight").data)
    counts = np.bincount((w + 1).ravel(), minlength=4)
    assert counts[3] == 0
    assert np.all(np.abs(counts[:3] / w.size - 1 / 3) < 0.02)


def test_bitlinear_scale_is_the_inverse_of_autobitlinear_scale(make_checkpoint) -> None:
    name = "model.layers.1.self_attn.q_proj.weight_scale"
    with (
        load_checkpoint(make_checkpoint(linear_class="bitlinear")) as div,
        load_checkpoint(make_checkpoint(linear_class="autobitlinear")) as mul,
    ):
        d = float(div.tensor(name).to_float32()[0])
        m = float(mul.tensor(name).to_float32()[0])
    assert 0.05 < m < 0.3  # about mean|W| = 1/sqrt(64)
    assert d * m == pytest.approx(1.0, rel=1e-2)  # both rounded to bfloat16


def test_invalid_options_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="autobitlinear"):
        write_checkpoint(tmp_path / "a", linear_class="autobitlinear-v2")
    with pytest.raises(ValueError, match="unknown family"):
        build_config(family="gpt2")
    with pytest.raises(ValueError, match="shards"):
        write_checkpoint(tmp_path / "b", shards=1000)
    with pytest.raises(ValueError, match="multiple of 4"):
        build_config({"hidden_size": 66, "num_attention_heads": 3, "num_key_value_heads": 3})
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        build_config({"vocab_size": 100})
    with pytest.raises(ValueError, match="unknown shape"):
        build_config("huge")


def test_tokenizer_round_trips_any_utf8_and_prepends_bos(make_checkpoint) -> None:
    from tokenizers import Tokenizer

    path = make_checkpoint()
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    assert tok.get_vocab_size() == tokenizer_size() <= build_config()["vocab_size"]
    bos = tok.token_to_id("<|begin_of_text|>")
    assert json.loads((path / "config.json").read_text())["bos_token_id"] == bos
    for text in ["Hello world", "héllo 你好 🤖\n\t\x00 naïve", "User: hi<|eot_id|>", ""]:
        ids = tok.encode(text).ids
        assert ids[0] == bos
        assert tok.decode(ids[1:], skip_special_tokens=False) == text
    assert tok.encode("<|eot_id|>", add_special_tokens=False).ids == [tok.token_to_id("<|eot_id|>")]
    # The trained merges compress English: far fewer tokens than bytes.
    sentence = "The weather today is cloudy with a chance of rain in the afternoon."
    assert len(tok.encode(sentence).ids) < len(sentence) / 2


def test_chat_template_renders_like_2b_4t(make_checkpoint) -> None:
    import jinja2

    cfg = json.loads((make_checkpoint() / "tokenizer_config.json").read_text())
    assert cfg["chat_template"] == CHAT_TEMPLATE
    template = jinja2.Environment().from_string(cfg["chat_template"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": " Hi! "},
        {"role": "assistant", "content": "Hello."},
    ]
    text = template.render(
        messages=messages, bos_token=cfg["bos_token"], add_generation_prompt=True
    )
    assert text == (
        "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hi!<|eot_id|>"
        "Assistant: Hello.<|eot_id|>Assistant: "
    )


def test_generation_config_lists_end_of_text_and_eot(make_checkpoint) -> None:
    from tokenizers import Tokenizer

    path = make_checkpoint()
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    gen = json.loads((path / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [
        tok.token_to_id("<|end_of_text|>"),
        tok.token_to_id("<|eot_id|>"),
    ]


def test_without_tokenizer_no_tokenizer_files_are_written(tmp_path: Path) -> None:
    out = write_checkpoint(tmp_path / "m", tokenizer=False)
    assert not (out / "tokenizer.json").exists() and not (out / "tokenizer_config.json").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"linear_class": "bitlinear"},
        {"mode": "online"},
        {"mode": "online", "dtype": "float32"},
        {"shape": ODD_SHAPE},
        {"shape": {"tie_word_embeddings": False}, "shards": 3},
    ],
    ids=["autobitlinear", "bitlinear", "online-bf16", "online-f32", "odd-shape", "untied-sharded"],
)
def test_transformers_loads_it_and_logits_are_not_degenerate(make_checkpoint, kwargs) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = make_checkpoint(**kwargs)
    model, info = transformers.BitNetForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    model = model.to(torch.float32)
    assert not any(info.values()), info  # no missing / unexpected / mismatched keys
    with load_checkpoint(path) as ck:
        emb = ck.tensor("model.embed_tokens.weight").to_float32()
    np.testing.assert_array_equal(model.model.embed_tokens.weight.detach().numpy(), emb)
    ids = torch.tensor([[tokenizer_size() - 3, 281, 471, 460, 74, 278, 81, 419, 77, 306]])
    with torch.no_grad():
        logits = model(ids).logits[0].numpy()
    assert np.isfinite(logits).all()
    assert logits.std(axis=-1).min() > 1.0  # far from uniform
    assert len(set(logits.argmax(axis=-1).tolist())) > 3  # positions disagree
    assert not np.allclose(logits[1], logits[2])


def test_bitlinear_and_autobitlinear_checkpoints_describe_the_same_model(make_checkpoint) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = []
    for linear_class in ("bitlinear", "autobitlinear"):
        model = transformers.BitNetForCausalLM.from_pretrained(
            make_checkpoint(linear_class=linear_class),
            dtype=torch.float32,
            attn_implementation="eager",
        ).to(torch.float32)
        with torch.no_grad():
            out.append(model(torch.tensor([[5, 300, 17, 42, 99, 7]])).logits[0].numpy())
    # Same seed, same codes; weight_scale x vs bf16(1/x): only bfloat16 rounding differs.
    np.testing.assert_array_equal(out[0].argmax(-1), out[1].argmax(-1))
    assert np.abs(out[0] - out[1]).max() < 0.1 * np.abs(out[1]).max()


def test_write_hub_cache_uses_the_huggingface_layout(make_checkpoint, tmp_path: Path) -> None:
    src = make_checkpoint()
    snapshot = write_hub_cache(tmp_path / "hub", "owner/name", src)
    storage = tmp_path / "hub" / "models--owner--name"
    assert snapshot.parent == storage / "snapshots"
    assert (storage / "refs" / "main").read_text() == snapshot.name
    assert len(snapshot.name) == 40
    for f in src.iterdir():
        link = snapshot / f.name
        assert link.is_symlink() and link.resolve().parent == (storage / "blobs").resolve()
        assert link.read_bytes() == f.read_bytes()


def test_command_line_writes_a_loadable_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = [str(out), "--shape", "tiny", "--mode", "offline", "--linear-class", "bitlinear"]
    assert main([*args, "--shards", "2", "--seed", "3", "--set", "num_hidden_layers=1"]) == 0
    assert "wrote" in capsys.readouterr().out
    with load_checkpoint(out) as ck:
        assert ck.config.num_hidden_layers == 1
        assert ck.config.linear_class == "bitlinear"
        assert len(ck.files) == 2


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "bitnet_backend.testing", str(tmp_path / "m"), "--mode", "online"]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    with load_checkpoint(tmp_path / "m") as ck:
        assert ck.config.quantization_mode == "online"
