"""ONNX export and the onnxruntime backend: the exported network runs within 1e-4 of ours (BS and Mel, any
batch and length), Separator and the command line separate through it, and files of other models are refused."""

import subprocess
import sys

import pytest
import torch
import yaml

pytest.importorskip("onnxruntime", reason="the ONNX tests need pip install 'bs-roformer[onnx]'")
pytest.importorskip("onnxscript", reason="the ONNX tests need pip install 'bs-roformer[onnx]'")
import onnx  # noqa: E402

from bs_roformer import LoadedModel, Separator, export_onnx  # noqa: E402
from bs_roformer.inference.backends import AroundMasks  # noqa: E402
from bs_roformer.inference.config import model_from_config, read_config, stem_names  # noqa: E402
from bs_roformer.inference.onnx_export import OnnxMasks, fingerprint  # noqa: E402
from helpers import assert_relative_close, make_audio, perturb_, tiny_config  # noqa: E402

# one depth-1 model of each family, covering value residual (BS) and the linear attention layers (Mel)
CONFIGS = {
    "bs_roformer": tiny_config("bs_roformer", num_stems=2, depth=1, value_residual=True, freqs_per_bands=(4, 12, 32, 81)),
    "mel_band_roformer": tiny_config("mel_band_roformer", num_stems=2, depth=1, num_bands=6, linear_transformer_depth=1),
}


def loaded_model(kind: str, seed: int = 0) -> LoadedModel:
    config = read_config(CONFIGS[kind])
    torch.manual_seed(seed)
    model = perturb_(model_from_config(config), seed=seed).eval()
    return LoadedModel(model, kind, config, stem_names(config, 2), "test")


@pytest.fixture(scope="module")
def bs_files(tmp_path_factory):
    """The BS model as checkpoint + config, exported by `bs-roformer export`."""
    folder = tmp_path_factory.mktemp("bs")
    loaded = loaded_model("bs_roformer")
    torch.save(loaded.model.state_dict(), folder / "model.ckpt")
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIGS["bs_roformer"]))
    command = [sys.executable, "-m", "bs_roformer", "export", str(folder / "model.ckpt"), str(folder / "model.onnx"),
               "--config", str(folder / "config.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote" in result.stdout
    return loaded, folder


@pytest.fixture(scope="module")
def mel_cache(tmp_path_factory):
    """The Mel model exported on the fly by Separator(backend="onnxruntime") into a cache."""
    cache = tmp_path_factory.mktemp("cache")
    loaded = loaded_model("mel_band_roformer")
    separator = Separator(loaded, device="cpu", backend="onnxruntime", cache=cache)
    return loaded, cache, separator


def check_against_torch(loaded: LoadedModel, session: OnnxMasks, name: str) -> None:
    model = loaded.model
    for batch, length in ((1, 4096), (3, 2500)):  # other batch sizes and frame counts than the export's
        audio = make_audio(batch, 2, length, seed=batch)
        with torch.no_grad():
            spec = model.stft(audio)
            assert_relative_close(f"{name} masks b{batch}", session(spec), model.masks(spec))
            assert_relative_close(f"{name} output b{batch}", AroundMasks(model, session)(audio), model(audio))
        # silence: RMSNorm's eps must survive export (an optimizer that drops it turns zeros into NaN)
        silent = model.stft(torch.zeros(2, 2, 3000))
        assert not session(silent).isnan().any()
        assert_relative_close(f"{name} masks of silence", session(silent), model.masks(silent))


def test_bs_export_matches_torch_and_separates(bs_files, tmp_path):
    loaded, folder = bs_files
    graph = onnx.load(folder / "model.onnx")
    assert max(opset.version for opset in graph.opset_import if opset.domain == "") >= 17
    batch, bins, frames, parts = graph.graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and frames.dim_param and (bins.dim_value, parts.dim_value) == (258, 2)
    assert {"Softmax", "MatMul"} <= {node.op_type for node in graph.graph.node}  # SDPA becomes matmul-softmax-matmul
    check_against_torch(loaded, OnnxMasks(folder / "model.onnx", fingerprint(loaded)), "bs onnx")

    mix = make_audio(1, 2, 11_000, seed=3)[0]
    ours = Separator(loaded, device="cpu").separate_tensor(mix)
    through_onnx = Separator(loaded, device="cpu", backend="onnxruntime", onnx=folder / "model.onnx").separate_tensor(mix)
    for stem in ours:
        assert_relative_close(f"bs onnx separator {stem}", through_onnx[stem], ours[stem])


def test_cli_separates_through_onnx_and_keeps_existing_exports(bs_files, tmp_path):
    import soundfile as sf

    _, folder = bs_files
    sf.write(tmp_path / "song.wav", make_audio(1, 2, 6000)[0].T.numpy(), 44100)
    model = ["--model", str(folder / "model.ckpt"), "--config", str(folder / "config.yaml")]
    command = [sys.executable, "-m", "bs_roformer", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), *model,
               "--backend", "onnxruntime", "--onnx", str(folder / "model.onnx"), "--disable_detailed_pbar"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "out" / "song").iterdir()) == ["bass.wav", "drums.wav"]

    again = [sys.executable, "-m", "bs_roformer", "export", *model[1::2][:1], str(folder / "model.onnx"), "--config", model[3]]
    result = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "exists already; use --overwrite" in result.stderr


def test_mel_export_on_first_use_matches_torch_and_is_reused(mel_cache):
    loaded, cache, separator = mel_cache
    (exported,) = (cache / "onnx").glob("*.onnx")
    check_against_torch(loaded, OnnxMasks(exported, fingerprint(loaded)), "mel onnx")
    mix = make_audio(1, 2, 9000, seed=4)[0]
    ours = Separator(loaded, device="cpu").separate_tensor(mix)
    for stem, estimate in separator.separate_tensor(mix).items():
        assert_relative_close(f"mel onnx separator {stem}", estimate, ours[stem])
    modified = exported.stat().st_mtime_ns
    Separator(loaded, device="cpu", backend="onnxruntime", cache=cache)
    assert exported.stat().st_mtime_ns == modified and len(list((cache / "onnx").iterdir())) == 1


def test_files_of_other_models_and_unsupported_settings_are_refused(bs_files, mel_cache):
    _, folder = bs_files
    other_weights = loaded_model("bs_roformer", seed=1)
    with pytest.raises(ValueError, match="exported from another model"):
        Separator(other_weights, device="cpu", backend="onnxruntime", onnx=folder / "model.onnx")
    with pytest.raises(ValueError, match="exported from another model"):
        OnnxMasks(folder / "model.onnx", fingerprint(mel_cache[0]))
    with pytest.raises(ValueError, match="precision 'bf16' needs backend='torch'"):
        Separator(other_weights, device="cpu", backend="onnxruntime", precision="bf16", onnx=folder / "model.onnx")
    with pytest.raises(FileNotFoundError, match="bs-roformer export"):
        Separator(other_weights, device="cpu", backend="onnxruntime", onnx=folder / "missing.onnx")
    with pytest.raises(TypeError, match="band-split model"):
        export_onnx(torch.nn.Linear(2, 2), folder / "linear.onnx")
    with pytest.raises(ValueError, match="opset must be 17 or newer"):
        export_onnx(other_weights, folder / "old.onnx", opset=13)
