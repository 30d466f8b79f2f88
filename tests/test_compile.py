"""The code paths a captured graph takes (torch.compile, ONNX export) compute what the eager ones do, and
Separator(compile=True) separates within 1e-4 of the eager model."""

import os

import pytest
import torch

from bs_roformer import LoadedModel, Separator
from bs_roformer.inference.config import model_from_config, read_config, stem_names
from bs_roformer.modules import axial_transformer, rotary
from helpers import assert_relative_close, make_audio, perturb_, tiny_config

CONFIGS = {
    "bs_roformer": tiny_config("bs_roformer", num_stems=2, value_residual=True),
    "mel_band_roformer": tiny_config("mel_band_roformer", num_stems=2, linear_transformer_depth=1),
}


def loaded_model(kind: str) -> LoadedModel:
    config = read_config(CONFIGS[kind])
    torch.manual_seed(0)
    model = perturb_(model_from_config(config)).eval()
    return LoadedModel(model, kind, config, stem_names(config, 2), "test")


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_captured_graph_paths_match_the_eager_ones(kind, monkeypatch):
    model = loaded_model(kind).model
    audio = make_audio(2, 2, 5000)
    with torch.no_grad():
        spec = model.stft(audio)
        eager = model.masks(spec)
        # real (cos, sin) rotary tables and one pass over all sequences, as under torch.compile / ONNX export
        for module in (rotary, axial_transformer):
            monkeypatch.setattr(module, "capturing_graph", lambda: True)
        assert not rotary.rotary_tables(model.layers[0].time.layers[0][0].rotary_embed, 5, spec.device).is_complex()
        captured = model.masks(spec)
    assert_relative_close(f"{kind} captured-graph paths", captured, eager, tolerance=1e-5)


@pytest.mark.skipif(
    not os.environ.get("BS_ROFORMER_TEST_COMPILE"),
    reason="torch.compile (inductor, gcc) takes minutes on a 2-core CPU; set BS_ROFORMER_TEST_COMPILE=1 to run it",
)
def test_compiled_separator_matches_eager():
    loaded = loaded_model("bs_roformer")
    mix = make_audio(1, 2, 11_000, seed=2)[0]  # 3 batches of 2 chunks, the last one chunk: padded, not recompiled
    eager = Separator(loaded, device="cpu").separate_tensor(mix)
    compiled = Separator(loaded, device="cpu", compile=True).separate_tensor(mix)
    for stem in eager:
        assert_relative_close(f"compiled separator {stem}", compiled[stem], eager[stem])
