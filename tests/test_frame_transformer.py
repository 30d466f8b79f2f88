"""Frame-transformer V1 and V3 against the reference files of carperbr/frame-transformer at 90ab4e3 (see
frame_transformer_reference.py): state dicts, outputs, gradients, the whole separation, loading."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import yaml

import frame_transformer_reference as ft_reference
from bs_roformer import FrameTransformer, FrameTransformerV3, Separator, load_model
from bs_roformer.inference.config import read_config
from bs_roformer.inference.crops import CropLayout, separate_in_crops, spectrogram_max
from bs_roformer.inference.loading import LoadedModel
from bs_roformer.models.frame_transformer import PUBLISHED_V1, FrameTransformerConfig, FrameTransformerV3Config
from bs_roformer.modules.multichannel import FrameNorm
from helpers import LARGEST_DIFFERENCES, assert_relative_close, relative_difference

needs_reference = pytest.mark.skipif(ft_reference.reference_folder() is None, reason=ft_reference.SKIP_REASON)


@pytest.fixture(scope="module")
def reference():
    return ft_reference.frame_transformer()


# (channels, num_heads, expansion, n_fft, frames): heads must divide n_fft / 64, V1's deepest features
V1_CONFIGS = [(2, 1, 2, 256, 37), (3, 4, 5, 512, 21), (4, 2, 24, 256, 15), (2, 8, 2, 2048, 9)]
# (channels, num_heads, expansion, n_fft, num_layers, frames)
V3_CONFIGS = [(2, 1, 2, 256, 2, 37), (5, 8, 3, 512, 3, 19), (8, 4, 24, 256, 2, 11), (3, 2, 4, 2048, 1, 7)]


def check_against_reference(name: str, ours, theirs, frames: int):
    """Same state-dict keys, order and shapes; fp32 eval outputs and training-loss gradients within 1e-4."""
    theirs_state = theirs.state_dict()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in theirs_state.items()]
    ours.load_state_dict(theirs_state, strict=True)

    generator = torch.Generator().manual_seed(1)
    magnitude = torch.rand(2, 2, ours.max_bin, frames, generator=generator) ** 3
    instrumental = magnitude * torch.rand(magnitude.shape, generator=generator)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert_relative_close(f"frame-transformer {name} logits", ours.mask_logits(magnitude), theirs(magnitude))

    ours.train(), theirs.train()  # dropout 0: training mode, deterministic
    for model, logits in ((theirs, theirs(magnitude)), (ours, ours.mask_logits(magnitude))):
        # train-thin.py's loss: L1 between the masked mix and the instrumental magnitudes
        torch.nn.functional.l1_loss(magnitude * torch.sigmoid(logits), instrumental).backward()
    ours_grads = {name: p.grad for name, p in ours.named_parameters()}
    largest = max(float(p.grad.abs().max()) for p in theirs.parameters() if p.grad is not None)
    worst = 0.0
    for key, parameter in theirs.named_parameters():
        if parameter.grad is None:  # V1's unused norm3
            assert ours_grads[key] is None, key
            continue
        worst = max(worst, float((ours_grads[key] - parameter.grad).abs().max()) / largest)
    LARGEST_DIFFERENCES[f"frame-transformer {name} gradients"] = max(worst, LARGEST_DIFFERENCES.get(f"frame-transformer {name} gradients", 0.0))
    assert worst <= 1e-4


@needs_reference
@pytest.mark.parametrize("channels, num_heads, expansion, n_fft, frames", V1_CONFIGS)
def test_v1_matches_reference(reference, channels, num_heads, expansion, n_fft, frames):
    kwargs = dict(channels=channels, num_heads=num_heads, expansion=expansion, n_fft=n_fft, dropout=0.0)
    torch.manual_seed(0)
    check_against_reference("V1", FrameTransformer(**kwargs), reference.V1(**kwargs), frames)


@needs_reference
@pytest.mark.parametrize("channels, num_heads, expansion, n_fft, num_layers, frames", V3_CONFIGS)
def test_v3_matches_reference(reference, channels, num_heads, expansion, n_fft, num_layers, frames):
    kwargs = dict(channels=channels, num_heads=num_heads, expansion=expansion, n_fft=n_fft, num_layers=num_layers, dropout=0.0)
    torch.manual_seed(0)
    check_against_reference("V3", FrameTransformerV3(**kwargs), reference.V3(**kwargs), frames)


@needs_reference
def test_published_v1_checkpoint_loads_by_architecture_inference(reference, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "local.87.model.pth"
    torch.save(reference.V1(in_channels=2, channels=8, n_fft=2048, dropout=0.1, expansion=24, num_heads=8).state_dict(), path)
    loaded = load_model(path)  # strict: every key, shape and order of the reference's
    assert loaded.model_type == "frame_transformer"
    assert loaded.model.config == PUBLISHED_V1
    assert sum(p.numel() for p in loaded.model.parameters()) == 205_948_976
    assert len(loaded.model.state_dict()) == 247
    assert loaded.stems == ["vocals", "instruments"]
    assert loaded.model.config.num_heads == 8  # from the rotary buffers' length


# --- the whole separation -----------------------------------------------------------------------------

def tiny_v1(reference, n_fft: int = 128, hop: int = 64):
    """The reference V1 and ours with its random weights (n_fft 128: its deepest level has 2 features)."""
    torch.manual_seed(0)
    theirs = reference.V1(channels=2, num_heads=2, expansion=2, n_fft=n_fft).eval()
    ours = FrameTransformer(channels=2, num_heads=2, expansion=2, n_fft=n_fft, hop_length=hop).eval()
    ours.load_state_dict(theirs.state_dict())
    config = read_config({"model": ours.config.to_msst(), "training": {"model_type": "frame_transformer"}})
    return theirs, LoadedModel(model=ours, model_type="frame_transformer", config=config, stems=list(ours.stem_names), source="test")


def reference_separation(reference, theirs, mix: np.ndarray, n_fft: int, hop: int, tta: bool):
    """inference_thin2.py's Separator on librosa < 0.9's STFT (reflect padding) and its iSTFT."""
    import librosa

    spec = np.stack([librosa.stft(channel, n_fft=n_fft, hop_length=hop, pad_mode="reflect") for channel in mix])
    separator = reference.Separator(None, theirs, torch.device("cpu"), 4, 1024, n_fft)
    instruments, vocals, _ = separator.separate_tta(spec) if tta else separator.separate(spec, padding=512)
    return {name: np.stack([librosa.istft(channel, hop_length=hop) for channel in stem])
            for name, stem in (("vocals", vocals), ("instruments", instruments))}


@needs_reference
@pytest.mark.parametrize("seconds, tta, hop", [(2.0, False, 64), (2.0, True, 64), (0.4, False, 64), (0.8, False, 32)])
def test_separation_matches_reference_separator(reference, seconds, tta, hop):
    """Crops of 1024 frames with 512 of context (several crops at 2 s), TTA over crop sizes 256..2048, audio
    shorter than one crop; hop n_fft / 2 (the reference's, with the tail frame) and n_fft / 4."""
    theirs, loaded = tiny_v1(reference, hop=hop)
    length = int(44100 * seconds)
    rng = np.random.default_rng(0)
    mix = (rng.standard_normal((2, length)) * np.linspace(0.05, 1, length)).astype(np.float32)
    expected = reference_separation(reference, theirs, mix, 128, hop, tta)
    stems = Separator(loaded, device="cpu", tta=tta, batch_size=3).separate_tensor(torch.from_numpy(mix))
    for name, theirs_stem in expected.items():
        ours = stems[name][:, : theirs_stem.shape[-1]]  # the reference stops a partial hop short
        assert stems[name].shape == (2, length)
        assert_relative_close(f"frame-transformer separation{' TTA' if tta else ''} {name}", ours, torch.from_numpy(theirs_stem))
    # complementary masks: the stems add up to the mix, also over the last partial hop
    assert float((stems["vocals"] + stems["instruments"] - torch.from_numpy(mix)).abs().max()) < 1e-5


def test_streamed_crops_equal_one_block_and_lossless_sums_exactly():
    torch.manual_seed(0)
    model = FrameTransformer(channels=2, num_heads=2, expansion=2, n_fft=128).eval()
    mix = torch.randn(2, 30000)
    layouts = [CropLayout(64, 16)]
    scale = spectrogram_max([mix], 30000, 128, 64, torch.hann_window(128))
    separated = lambda blocks, batch_size: torch.cat(list(separate_in_crops(  # noqa: E731
        blocks, 30000, model.crop_masks, layouts, n_fft=128, hop_length=64, scale=scale, batch_size=batch_size)), -1)
    with torch.no_grad():
        whole = separated([mix], 1)
        assert whole.shape == (2, 2, 30000)
        assert torch.equal(separated(mix.split(777, dim=-1), 1), whole)  # blocks of any size: the same
        assert relative_difference(separated(mix.split(777, dim=-1), 2), whole) < 1e-5  # batching: float rounding only

    config = read_config({"model": model.config.to_msst(), "training": {"model_type": "frame_transformer"}})
    loaded = LoadedModel(model=model, model_type="frame_transformer", config=config, stems=["vocals", "instruments"], source="test")
    stems = Separator(loaded, device="cpu").separate_tensor(mix[:1], lossless=True)  # mono into a stereo model
    assert list(stems) == ["vocals", "instruments"] and stems["vocals"].shape == (1, 30000)
    assert float((stems["vocals"] + stems["instruments"] - mix[:1]).abs().max()) < 1e-6


def test_mono_model_separates_each_channel_of_a_stereo_mix():
    torch.manual_seed(0)
    model = FrameTransformer(in_channels=1, out_channels=1, channels=2, num_heads=2, expansion=2, n_fft=128).eval()
    config = read_config({"model": model.config.to_msst(), "training": {"model_type": "frame_transformer"}})
    loaded = LoadedModel(model=model, model_type="frame_transformer", config=config, stems=["vocals", "instruments"], source="test")
    mix = torch.randn(2, 6000) * torch.tensor([[1.0], [0.3]])  # the left channel holds the track's largest magnitude
    stems = Separator(loaded, device="cpu").separate_tensor(mix)
    left = Separator(loaded, device="cpu").separate_tensor(mix[:1])  # so it is scaled alone as in the pair
    assert stems["vocals"].shape == (2, 6000)
    assert float((stems["vocals"] + stems["instruments"] - mix).abs().max()) < 1e-5
    assert relative_difference(stems["vocals"][:1], left["vocals"]) < 1e-5


def test_silence_gives_silent_stems():
    model = FrameTransformer(channels=2, num_heads=1, expansion=2, n_fft=128).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 2, 5000)).abs().max() == 0


# --- loading ------------------------------------------------------------------------------------------

def test_checkpoints_are_recognised_and_their_architecture_inferred(tmp_path):
    torch.manual_seed(0)
    v1 = FrameTransformer(in_channels=1, out_channels=1, channels=3, expansion=5, n_fft=256, num_heads=2)
    v3 = FrameTransformerV3(channels=4, expansion=3, n_fft=512, num_layers=3, num_heads=16)
    for model, model_type in ((v1, "frame_transformer"), (v3, "frame_transformer_v3")):
        path = tmp_path / f"{model_type}.pth"
        torch.save({"state_dict": model.state_dict()}, path)
        loaded = load_model(path)
        assert loaded.model_type == model_type and loaded.stems == ["vocals", "instruments"]
        # the head count shows in the rotary buffers' length; dropout does not show
        assert loaded.model.config.to_msst() == {**model.config.to_msst(), "dropout": 0.1}
        assert not any("num_heads" in note for note in loaded.notes)
        assert any("hop_length" in note for note in loaded.notes)

    # without the rotary buffers (constants, filled in from the model) the head count is assumed: the
    # published 8, or its largest divisor that divides V1's deepest level (n_fft / 64 = 4 features here)
    weights = {key: value for key, value in v1.state_dict().items() if not key.endswith("rotary_embedding.freqs")}
    torch.save(weights, tmp_path / "no_rotary.pth")
    loaded = load_model(tmp_path / "no_rotary.pth")
    assert loaded.model.config.num_heads == 4 and any("num_heads=4 assumed" in note for note in loaded.notes)
    overridden = load_model(tmp_path / "no_rotary.pth", model_overrides={"num_heads": 2})
    assert overridden.model.config.num_heads == 2
    mix = torch.randn(1, 1, 3000)
    with torch.no_grad():
        assert torch.equal(overridden.model(mix), v1.eval()(mix))


def test_half_precision_checkpoint_gets_exact_rotary_frequencies(tmp_path):
    model = FrameTransformer(channels=2, num_heads=2, expansion=2, n_fft=256)
    torch.save({key: value.half() for key, value in model.state_dict().items()}, tmp_path / "half.pth")
    loaded = load_model(tmp_path / "half.pth").model
    freqs = "enc0_transformer.attn.rotary_embedding.freqs"
    assert not torch.equal(model.state_dict()[freqs].half().float(), model.state_dict()[freqs])  # fp16 rounds them
    assert torch.equal(loaded.state_dict()[freqs], model.state_dict()[freqs])


def test_msst_yaml_with_frame_transformer_model_types(tmp_path):
    torch.manual_seed(0)
    model = FrameTransformerV3(channels=2, expansion=2, n_fft=256, num_layers=1, num_heads=2)
    torch.save(model.state_dict(), tmp_path / "v3.pth")
    config = {"audio": {"sample_rate": 44100}, "model": {"channels": 2, "expansion": 2, "n_fft": 256, "num_layers": 1, "num_heads": 2},
              "training": {"model_type": "frame_transformer_v3"}}
    (tmp_path / "v3.yaml").write_text(yaml.safe_dump(config))
    loaded = load_model(tmp_path / "v3.pth", config=tmp_path / "v3.yaml")
    assert isinstance(loaded.model, FrameTransformerV3) and loaded.model.config.num_heads == 2
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**config, "model": {**config["model"], "depth": 3}}))
    with pytest.raises(ValueError, match="depth"):
        load_model(tmp_path / "v3.pth", config=tmp_path / "bad.yaml")


def test_configs_round_trip_and_reject_unknown_settings():
    assert FrameTransformerConfig.from_msst(PUBLISHED_V1.to_msst()) == PUBLISHED_V1
    v3 = FrameTransformerV3Config(num_layers=2)
    assert FrameTransformerV3Config.from_msst(v3.to_msst()) == v3
    with pytest.raises(ValueError, match="num_layers"):
        FrameTransformerConfig.from_msst({"num_layers": 3})
    with pytest.raises(ValueError, match="did you mean num_heads"):
        FrameTransformerConfig.from_msst({"num_head": 3})
    with pytest.raises(TypeError, match="n_fft must be int"):
        FrameTransformer(n_fft="2048")
    with pytest.raises(ValueError, match="hop_length"):
        FrameTransformerV3(n_fft=256, hop_length=512)
    with pytest.raises(ValueError, match="num_heads"):
        FrameTransformer(n_fft=256, num_heads=8)  # 8 heads do not divide the deepest level's 4 features


def test_training_loss_needs_vocals_or_both_stems():
    torch.manual_seed(0)
    model = FrameTransformer(channels=2, num_heads=1, expansion=2, n_fft=128, dropout=0.0)
    mix, vocals = torch.randn(2, 2, 4000), torch.randn(2, 2, 4000)
    loss = model(mix, target=vocals)  # the instrumental is the rest of the mix
    assert torch.allclose(loss, model(mix, target=torch.stack([vocals, mix - vocals], dim=1)), atol=1e-7)
    loss.backward()
    assert all((p.grad is None) == (".norm3." in name) for name, p in model.named_parameters())  # norm3: unused
    with pytest.raises(ValueError, match="vocals"):
        model(mix, target=torch.randn(2, 3, 2, 4000))


# --- command line -------------------------------------------------------------------------------------

@needs_reference
def test_command_line_separates_with_a_reference_written_checkpoint(reference, tmp_path):
    torch.manual_seed(0)
    torch.save(reference.V1(channels=2, num_heads=2, expansion=2, n_fft=128).state_dict(), tmp_path / "local.pth")
    song = tmp_path / "song.wav"
    soundfile.write(song, np.random.default_rng(0).standard_normal((9000, 2)).astype(np.float32) * 0.1, 44100)
    command = [sys.executable, "-m", "bs_roformer", str(song), "-m", str(tmp_path / "local.pth"), "-o", str(tmp_path / "out"), "--use_tta"]
    subprocess.run(command, check=True, capture_output=True)
    written = sorted(path.name for path in (tmp_path / "out" / "song").iterdir())
    assert written == ["instruments.wav", "vocals.wav"]
    vocals, _ = soundfile.read(tmp_path / "out" / "song" / "vocals.wav")
    assert vocals.shape == (9000, 2)


# --- training -----------------------------------------------------------------------------------------

def test_training_on_musdb_layout_lowers_the_loss(tmp_path):
    from bs_roformer.training import Trainer, write_synthetic_dataset
    from bs_roformer.training.evaluate import evaluate

    rate = 16000
    write_synthetic_dataset(tmp_path / "data" / "train", tracks=3, seconds=2.0, sample_rate=rate)
    write_synthetic_dataset(tmp_path / "data" / "test", tracks=1, seconds=2.0, sample_rate=rate, seed=9)
    config = {
        "audio": {"chunk_size": 4000, "sample_rate": rate, "num_channels": 2},
        "model": dict(channels=2, num_heads=1, expansion=2, n_fft=128, hop_length=64, sample_rate=rate),
        # vocals against the rest: the mix of the four stems minus the vocals is the instrumental target
        "training": {"model_type": "frame_transformer", "instruments": ["vocals", "drums", "bass", "other"],
                     "batch_size": 2, "num_steps": 100, "num_epochs": 1, "lr": 2e-3},
    }
    trainer = Trainer(config, tmp_path / "data", tmp_path / "run", progress=False)
    batch = [trainer.dataset[index] for index in range(4)]
    mixture, stems = torch.stack([item[0] for item in batch]), torch.stack([item[1] for item in batch])

    def fixed_batch_loss() -> float:
        trainer.model.eval()
        with torch.no_grad():
            return float(trainer.model(mixture, target=stems[:, 0]))

    before = fixed_batch_loss()
    row = trainer.train()
    assert row["step"] == 100 and np.isfinite(row["sdr_vocals"])
    after = fixed_batch_loss()
    assert after < 0.7 * before
    loaded = load_model(tmp_path / "run" / "final.ckpt", config=tmp_path / "run" / "config.yaml")
    assert isinstance(loaded.model, FrameTransformer) and loaded.stems == ["vocals", "instruments"]
    # evaluation scores the stem the dataset has (MUSDB has no `instruments` file)
    scores = evaluate(Separator(loaded, device="cpu"), tmp_path / "data" / "test", progress=False)
    assert scores.stems == ["vocals"] and np.isfinite(scores.overall["vocals"]["global_sdr"])


def test_frame_norm_is_the_same_in_either_memory_layout():
    """The U-Net's inference path normalises channels-last memory in place of a transposing copy."""
    norm = FrameNorm(16)
    torch.nn.init.normal_(norm.norm.weight), torch.nn.init.normal_(norm.norm.bias)
    x = torch.rand(2, 3, 16, 7) ** 2
    expected = torch.nn.functional.layer_norm(x.transpose(2, 3), (16,), norm.norm.weight, norm.norm.bias).transpose(2, 3)
    with torch.no_grad():
        channels_last = norm(x.contiguous(memory_format=torch.channels_last))
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(channels_last, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(norm(x), expected, rtol=0, atol=0)
    # with autograd, channels-last input takes layer_norm's path
    torch.testing.assert_close(norm(x.contiguous(memory_format=torch.channels_last)), expected, rtol=0, atol=1e-6)
