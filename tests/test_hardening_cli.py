"""Regression tests of issue 10's separation defects: bad input, bad output paths, interruptions, messages."""

import builtins
import errno
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from bs_roformer import atomic
from bs_roformer.cli import COMMANDS, main
from bs_roformer.cli.separate import build_parser
from bs_roformer.inference import audio_io
from bs_roformer.inference.errors import SeparationError
from bs_roformer.inference.separator import Separator
from helpers import SMALL_BANDS, save_tiny_model, tiny_config, tone

STEMS = ("drums", "bass", "other", "vocals")


@pytest.fixture
def model_files(tmp_path):
    return save_tiny_model(tmp_path)


def files_under(folder: Path):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def fail_model_after(monkeypatch, calls: int, error: BaseException):
    """Make the model raise `error` on its (calls + 1)-th call."""
    original, seen = Separator._run_model, []

    def failing(self, chunks):
        seen.append(1)
        if len(seen) > calls:
            raise error
        return original(self, chunks)

    monkeypatch.setattr(Separator, "_run_model", failing)


# --- 1. output paths -----------------------------------------------------------------------------------


def test_same_names_in_subfolders_keep_their_folders(tmp_path, model_files, capsys):
    for folder, seed in (("a", 0), ("b", 1)):
        (tmp_path / "in" / folder).mkdir(parents=True)
        sf.write(tmp_path / "in" / folder / "song.wav", tone(0.2, 44100, 2, seed=seed), 44100)
    out = tmp_path / "out"
    assert main([str(tmp_path / "in"), "-o", str(out), *model_files, "--disable_detailed_pbar"]) == 0
    assert files_under(out) == sorted(f"{folder}/song/{stem}.wav" for folder in "ab" for stem in STEMS)
    a, b = (sf.read(out / folder / "song" / "vocals.wav")[0] for folder in "ab")
    assert not np.array_equal(a, b)
    assert "separated 2 of 2 inputs" in capsys.readouterr().err


def test_same_names_given_as_files_are_told_apart(tmp_path, model_files, capsys):
    for folder in "ab":
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "song.wav", tone(0.2, 44100, 2), 44100)
    sf.write(tmp_path / "a" / "song.flac", tone(0.2, 44100, 2), 44100)
    out = tmp_path / "out"
    inputs = [str(tmp_path / "a" / "song.wav"), str(tmp_path / "b" / "song.wav"), str(tmp_path / "a")]
    assert main([*inputs, "-o", str(out), *model_files, "--overwrite"]) == 0
    # a/song.flac (found in a/, whose own folder is the output folder) is the third song
    assert files_under(out) == sorted(f"{track}/{stem}.wav" for track in ("song", "song-2", "song-3") for stem in STEMS)
    err = capsys.readouterr().err
    assert err.count("would write the same files") == 2 and "given twice" in err  # a/song.wav again, in a/
    assert "separated 3 of 3 inputs" in err


def test_a_template_without_track_is_refused_before_any_separation(tmp_path, model_files, monkeypatch, capsys):
    for name in ("one.wav", "two.wav"):
        sf.write(tmp_path / name, tone(0.2, 44100, 2), 44100)
    monkeypatch.setattr(Separator, "separate_file", lambda *args, **kwargs: pytest.fail("separated"))
    out = tmp_path / "out"
    args = [str(tmp_path / "one.wav"), str(tmp_path / "two.wav"), "-o", str(out), "--filename-template", "{stem}"]
    assert main([*args, *model_files]) == 2
    assert "include {track}" in capsys.readouterr().err and not out.exists()


def test_outputs_never_replace_an_input(tmp_path, capsys):
    flags = save_tiny_model(tmp_path, num_stems=1)
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    before = (tmp_path / "song.wav").read_bytes()
    args = [str(tmp_path / "song.wav"), "-o", str(tmp_path), "--filename-template", "{track}", "--overwrite"]
    assert main([*args, *flags]) == 2
    assert "would replace input files" in capsys.readouterr().err
    assert (tmp_path / "song.wav").read_bytes() == before


# --- 2. non-finite input, and one file's error never ends the batch ------------------------------------------


def test_nan_input_is_refused_and_the_batch_goes_on(tmp_path, model_files, capsys):
    bad = tone(0.2, 44100, 2)
    bad[100, 1], bad[200, 0], bad[300, 0] = np.nan, np.inf, -np.inf
    sf.write(tmp_path / "bad.wav", bad, 44100, subtype="FLOAT")
    sf.write(tmp_path / "good.wav", tone(0.2, 44100, 2), 44100)
    out = tmp_path / "out"
    # FLAC and integer PCM cannot store NaN: soundfile used to abort the whole batch with an AssertionError
    args = [str(tmp_path / "bad.wav"), str(tmp_path / "good.wav"), "-o", str(out), "--flac", "--pcm-type", "PCM_16"]
    assert main([*args, *model_files]) == 1
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("  ") and "bad.wav" in line)
    assert "3 non-finite samples" in line and "frame 100" in line and "--nan-to-zero" in line
    assert files_under(out) == sorted(f"good/{stem}.flac" for stem in STEMS)

    assert main([*args, "--nan-to-zero", *model_files]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "3 non-finite samples" in err and "replaced by silence" in err
    assert all(np.isfinite(sf.read(out / "bad" / f"{stem}.flac")[0]).all() for stem in STEMS)


def test_nan_tensor_is_refused():
    from test_separator import identity_separator

    mix = torch.zeros(2, 1000)
    mix[0, 500] = float("nan")
    with pytest.raises(SeparationError, match="1 non-finite samples.*frame 500"):
        identity_separator().separate_tensor(mix)


def test_programming_errors_are_not_reported_as_bad_files(tmp_path, model_files, monkeypatch):
    sf.write(tmp_path / "song.wav", tone(0.5, 44100, 2), 44100)
    fail_model_after(monkeypatch, 1, RuntimeError("a bug in the model code"))
    with pytest.raises(RuntimeError, match="a bug"):
        main([str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--batch-size", "1", *model_files])
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []


# --- 3. nothing half-written -----------------------------------------------------------------------------


def test_sigterm_is_handled_like_ctrl_c(tmp_path, model_files):
    sf.write(tmp_path / "song.wav", tone(3.0, 44100, 2), 44100)
    out = tmp_path / "out"
    script = (
        "import sys, time\n"
        "from bs_roformer.inference.separator import Separator\n"
        "run = Separator._run_model\n"
        "Separator._run_model = lambda self, chunks: (time.sleep(0.2), run(self, chunks))[1]\n"
        "from bs_roformer.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    command = [sys.executable, "-c", script, str(tmp_path / "song.wav"), "-o", str(out), *model_files, "--disable_detailed_pbar"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.rglob(".bs-roformer-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.3)  # well inside the separation
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert files_under(out) == []


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, model_files, monkeypatch, capsys):
    sf.write(tmp_path / "song.wav", tone(0.5, 44100, 2), 44100)
    fail_model_after(monkeypatch, 2, KeyboardInterrupt())
    args = [str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--batch-size", "1", *model_files, "--disable_detailed_pbar"]
    assert main(args) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["bs-roformer: interrupted (SIGINT)"]
    assert files_under(tmp_path / "out") == []


def test_a_writer_failing_to_open_closes_and_deletes_the_others(tmp_path, model_files, capsys):
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "vocals").write_text("a file where the vocals folder would go")
    gc.collect()  # files earlier tests left unreachable would close during the run and skew the count
    descriptors = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else None
    args = [str(tmp_path / "song.wav"), "-o", str(out), "--filename-template", "{stem}/{track}.{ext}", *model_files]
    assert main(args) == 1
    assert str(out / "vocals") in capsys.readouterr().err
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == ["vocals"]  # no partials, no empty folders
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) == descriptors


def test_stems_are_published_together(tmp_path, model_files, monkeypatch, capsys):
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    out = tmp_path / "out"
    args = [str(tmp_path / "song.wav"), "-o", str(out), *model_files]
    assert main(args) == 0
    for stem in STEMS:
        (out / "song" / f"{stem}.wav").write_bytes(f"previous {stem}".encode())
    replace, calls = os.replace, []

    def failing_replace(source, destination):
        calls.append(destination)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error", str(destination))
        return replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    assert main([*args, "--overwrite"]) == 1
    assert "input/output error" in capsys.readouterr().err
    # all old or all new, never a mix: here the renames were rolled back
    assert {stem: (out / "song" / f"{stem}.wav").read_bytes() for stem in STEMS} == {stem: f"previous {stem}".encode() for stem in STEMS}
    assert files_under(out) == sorted(f"song/{stem}.wav" for stem in STEMS)


def test_file_set_unit(tmp_path):
    with atomic.FileSet([tmp_path / "new" / "a", tmp_path / "new" / "b"]) as files:
        for path in files.temporary.values():
            path.write_text("x")
        assert not (tmp_path / "new" / "a").exists()
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["a", "b"]
    with pytest.raises(ZeroDivisionError):
        with atomic.FileSet([tmp_path / "deep" / "er" / "a"]) as files:
            files.temporary[tmp_path / "deep" / "er" / "a"].write_text("x")
            1 / 0
    assert not (tmp_path / "deep").exists()  # the folders it made are gone again
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        atomic.FileSet([tmp_path / "folder"]).__enter__()


# --- 4. messages -----------------------------------------------------------------------------------------


def test_disk_full_names_the_file_and_the_reason(tmp_path, model_files, monkeypatch, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    # every stem file lands on a device that is always full: the kernel's ENOSPC, not a simulated one
    monkeypatch.setattr(audio_io, "open", lambda path, *args, **kwargs: builtins.open("/dev/full", *args, **kwargs), raising=False)
    assert main([str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), *model_files]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'out' / 'song' / 'drums.wav'}: no space left on device" in err and "System error" not in err
    assert files_under(tmp_path / "out") == []


def test_permission_denied_names_the_folder(tmp_path, model_files, monkeypatch, capsys):
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)

    def read_only(prefix, suffix, dir):  # a read-only folder (chmod does not stop root, who runs these tests here)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", read_only)
    assert main([str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), *model_files]) == 1
    assert f"{tmp_path / 'out' / 'song'}: permission denied" in capsys.readouterr().err


@pytest.mark.parametrize("name, content, reason", [
    ("text.ckpt", b"<html>Not Found</html>\n", "is not a PyTorch checkpoint"),
    ("broken.safetensors", b"\xff" * 64, "is not a readable .safetensors file"),
])
def test_unreadable_checkpoints_give_one_line(tmp_path, capsys, name, content, reason):
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    (tmp_path / name).write_bytes(content)
    assert main([str(tmp_path / "song.wav"), "-m", str(tmp_path / name)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and name in lines[0]


def test_mismatch_report_summarises_long_band_lists(tmp_path):
    from bs_roformer import load_model

    bands = (2,) * 40 + (49,)  # 129 bins in 41 bands
    flags = save_tiny_model(tmp_path, freqs_per_bands=bands, dim=16, depth=1)
    wrong = tmp_path / "wrong.yaml"
    import yaml

    wrong.write_text(yaml.safe_dump(tiny_config(freqs_per_bands=SMALL_BANDS, dim=16, depth=1)))
    with pytest.raises(ValueError) as error:
        load_model(flags[1], config=wrong)
    lines = str(error.value).splitlines()
    assert "freqs_per_bands: 41 bands (2 x 40, 49)" in str(error.value)
    assert len(lines) <= 25, "\n".join(lines)


# --- 5. silently ignored / misreported ---------------------------------------------------------------------


@pytest.mark.parametrize("file_format, subtype", [("wav", "PCM_16"), ("flac", "PCM_24")])
def test_truncated_file_is_separated_with_a_warning(tmp_path, model_files, capsys, file_format, subtype):
    whole = tmp_path / f"whole.{file_format}"
    sf.write(whole, tone(0.5, 44100, 2), 44100, subtype=subtype)
    data = whole.read_bytes()
    (tmp_path / f"cut.{file_format}").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert main([str(tmp_path / f"cut.{file_format}"), "-o", str(out), *model_files]) == 0
    warning = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:"))
    readable = sf.info(out / "cut" / "vocals.wav").frames
    assert f"cut.{file_format}" in warning and "truncated" in warning
    assert f"promises 22050 frames but only {readable} can be read" in warning and 0 < readable < 22050


def test_single_stem_lossless_instrumental_is_written_once(tmp_path, capsys):
    flags = save_tiny_model(tmp_path, num_stems=1)
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    out = tmp_path / "out"
    assert main([str(tmp_path / "song.wav"), "-o", str(out), "--lossless", "--extract_instrumental", *flags]) == 0
    assert files_under(out) == ["song/instrumental.wav", "song/vocals.wav"]


# --- 6. order of checks, help --------------------------------------------------------------------------------


def test_missing_inputs_are_reported_before_any_model_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bs_roformer.cli.separate.Separator", lambda *args, **kwargs: pytest.fail("the model was loaded"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    assert main([str(tmp_path / "missing.wav"), str(tmp_path / "empty"), "-m", "a_model_that_would_be_downloaded"]) == 1
    err = capsys.readouterr().err
    assert "missing.wav: no such file or folder" in err and "empty: no audio files in this folder" in err
    assert "separated 0 of 2 inputs" in err


def test_help_lists_every_command(monkeypatch):
    help_text = " ".join(build_parser().format_help().split())
    for name in COMMANDS:
        if name != "separate":
            assert f"{name}: " in help_text, name
    demo = type(sys)("demo")
    demo.__doc__ = "`bs-roformer demo`: a command added later."
    monkeypatch.setitem(COMMANDS, "demo", demo)
    assert "demo: a command added later" in " ".join(build_parser().format_help().split())


# --- 7. notes ------------------------------------------------------------------------------------------------


def test_instrumental_of_a_model_without_vocals_names_the_stem(tmp_path, capsys):
    flags = save_tiny_model(tmp_path, num_stems=2)  # drums, bass
    sf.write(tmp_path / "song.wav", tone(0.2, 44100, 2), 44100)
    assert main([str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--extract_instrumental", *flags]) == 0
    assert "no vocals stem: instrumental = mix - drums" in capsys.readouterr().err


# --- design: one device policy ----------------------------------------------------------------------------


def test_separation_and_training_choose_devices_alike(monkeypatch):
    from bs_roformer.devices import pick_device
    from bs_roformer.training.distributed import Processes

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == Processes().device(None) == torch.device("mps")
    assert Processes(rank=0, world_size=2).device(None) == torch.device("cpu")  # gloo cannot reduce MPS tensors
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Processes(rank=1, world_size=2, local_rank=1).device(None) == torch.device("cuda", 1)
    assert pick_device("cpu") == torch.device("cpu")
