"""The command line end to end on generated WAV/FLAC files, and every bad-input path."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from bs_roformer.cli import main
from helpers import save_tiny_model, tone


@pytest.fixture
def model_files(tmp_path):
    return save_tiny_model(tmp_path)


def test_wav_and_flac_mono_stereo_and_22khz(tmp_path, model_files, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "stereo.wav", tone(0.5, 44100, 2), 44100)
    sf.write(inputs / "mono.flac", tone(0.4, 22050, 1), 22050, subtype="PCM_16")
    out = tmp_path / "out"
    assert main([str(inputs), "-o", str(out), *model_files, "--disable_detailed_pbar"]) == 0
    for track, rate, channels, frames in (("stereo", 44100, 2, 22050), ("mono", 22050, 1, 8820)):
        for stem in ("drums", "bass", "other", "vocals"):
            info = sf.info(out / track / f"{stem}.wav")
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (rate, channels, frames, "FLOAT")
    assert "separated 2 of 2 inputs" in capsys.readouterr().err


def test_lossless_pcm16_flac_sums_within_one_lsb_per_stem(tmp_path, model_files):
    sf.write(tmp_path / "song.wav", tone(0.5, 44100, 2), 44100, subtype="PCM_16")
    args = [str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--lossless", "--flac", "--pcm-type", "PCM_16"]
    assert main([*args, *model_files]) == 0
    mix, _ = sf.read(tmp_path / "song.wav", dtype="int32")
    stems = [sf.read(tmp_path / "out" / "song" / f"{stem}.flac", dtype="int32")[0] for stem in ("drums", "bass", "other", "vocals")]
    lsb = 1 << 16  # int32 view of 16-bit samples
    assert np.abs(sum(s.astype(np.int64) for s in stems) - mix).max() <= 4 * lsb


def test_msst_inference_flags_run_unchanged(tmp_path, model_files):
    folder = tmp_path / "input"
    folder.mkdir()
    sf.write(folder / "track.wav", tone(0.3, 44100, 2), 44100)
    command = [
        "--model_type", "bs_roformer", "--config_path", model_files[3], "--start_check_point", model_files[1],
        "--input_folder", str(folder), "--store_dir", str(tmp_path / "results"), "--extract_instrumental",
        "--flac_file", "--pcm_type", "PCM_16", "--use_tta", "--force_cpu", "--disable_detailed_pbar",
    ]
    assert main(command) == 0
    written = sorted(p.name for p in (tmp_path / "results" / "track").iterdir())
    assert written == ["bass.flac", "drums.flac", "instrumental.flac", "other.flac", "vocals.flac"]


def test_bad_inputs_are_reported_and_skipped(tmp_path, model_files, capsys):
    sf.write(tmp_path / "good.wav", tone(0.3, 44100, 2), 44100)
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), dtype=np.float32), 44100)
    sf.write(tmp_path / "surround.wav", tone(0.3, 44100, 3), 44100)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (tmp_path / "notes.txt").write_text("not audio")
    names = ["missing.wav", "empty.wav", "surround.wav", "corrupt.wav", "notes.txt", "good.wav"]
    code = main([*(str(tmp_path / n) for n in names), "-o", str(tmp_path / "out"), *model_files])
    err = capsys.readouterr().err
    assert code == 1
    assert "separated 1 of 6 inputs" in err and "5 failed" in err
    for name, reason in (("missing.wav", "no such file"), ("empty.wav", "no audio samples"), ("surround.wav", "3 channels"),
                         ("corrupt.wav", "cannot read audio"), ("notes.txt", "cannot read audio")):
        assert any(name in line and reason in line for line in err.splitlines()), (name, err)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, model_files, capsys):
    sf.write(tmp_path / "song.wav", tone(0.3, 44100, 2), 44100)
    args = [str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), *model_files]
    assert main(args) == 0
    vocals = tmp_path / "out" / "song" / "vocals.wav"
    vocals.write_bytes(b"user's edit")
    assert main(args) == 0  # kept and skipped, as --help says: not a failure
    err = capsys.readouterr().err
    assert "outputs exist already" in err and "1 skipped" in err and "failed" not in err
    assert vocals.read_bytes() == b"user's edit"
    assert main([*args, "--overwrite"]) == 0
    assert sf.info(vocals).frames == 13230


def test_interrupted_run_leaves_no_partial_stems(tmp_path, model_files, monkeypatch):
    from bs_roformer.inference.separator import Separator

    sf.write(tmp_path / "song.wav", tone(1.0, 44100, 2), 44100)
    calls = []

    def failing(self, chunks):
        calls.append(1)
        if len(calls) > 2:
            raise torch.OutOfMemoryError("out of memory")
        return original(self, chunks)

    original = Separator._run_model
    monkeypatch.setattr(Separator, "_run_model", failing)
    assert main([str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--batch-size", "1", *model_files]) == 1
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_silent_input_gives_silent_stems(tmp_path, model_files):
    sf.write(tmp_path / "silence.wav", np.zeros((9000, 2), dtype=np.float32), 44100)
    assert main([str(tmp_path / "silence.wav"), "-o", str(tmp_path / "out"), *model_files]) == 0
    for stem in ("drums", "bass", "other", "vocals"):
        audio, _ = sf.read(tmp_path / "out" / "silence" / f"{stem}.wav")
        assert np.isfinite(audio).all() and np.abs(audio).max() == 0


def test_usage_errors(tmp_path, capsys):
    assert main([]) == 2
    assert "give one or more audio files" in capsys.readouterr().err
    assert main([str(tmp_path), "--model", str(tmp_path / "nothing.ckpt")]) in (1, 2)


def test_python_dash_m_and_models_listing():
    result = subprocess.run([sys.executable, "-m", "bs_roformer", "models"], capture_output=True, text=True, check=True)
    assert "model_bs_roformer_ep_17_sdr_9.6568 (default)" in result.stdout
    assert "vocals_mel_band_roformer_kj" in result.stdout
    result = subprocess.run([sys.executable, "-m", "bs_roformer", "--help"], capture_output=True, text=True, check=True)
    help_text = " ".join(result.stdout.split())
    assert "--lossless" in help_text and "one more model pass" in help_text
