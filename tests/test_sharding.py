"""Separating a folder across processes with torchrun: every file once, one summary from rank 0."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from bs_roformer import LoadedModel, Separator
from bs_roformer.inference.config import model_from_config, read_config, stem_names
from bs_roformer.inference.sharding import share
from bs_roformer.training.distributed import Processes
from helpers import perturb_, run_two_processes, tiny_config

STEMS = ("drums", "bass", "other", "vocals")


def test_shares_cover_every_file_once():
    files = [Path(f"song{index}.wav") for index in range(7)]
    for world_size in (1, 2, 3, 8):
        shares = [share(files, Processes(rank=rank, world_size=world_size)) for rank in range(world_size)]
        assert sorted(path for part in shares for path in part) == sorted(files)


def test_two_cpu_processes_separate_a_folder(tmp_path):
    config = tiny_config()
    torch.manual_seed(0)
    model = perturb_(model_from_config(read_config(config))).eval()
    torch.save(model.state_dict(), tmp_path / "model.ckpt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    songs = tmp_path / "songs"
    songs.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        sf.write(songs / f"song{index}.wav", (0.1 * rng.standard_normal((6000 + 1000 * index, 2))).astype(np.float32), 44100)
    (songs / "broken.wav").write_bytes(b"not audio at all")

    # the broken file makes the run fail, after the others are written
    result = run_two_processes("-m", "bs_roformer", "separate", str(songs), "-o", str(tmp_path / "out"),
                               "--model", str(tmp_path / "model.ckpt"), "--config", str(tmp_path / "config.yaml"),
                               "--device", "cpu", "--disable_detailed_pbar", timeout=300, succeed=False)
    assert result.stderr.count("separated 3 of 4 inputs") == 1, result.stderr[-3000:]
    assert result.stderr.count("1 failed:") == 1 and "broken.wav" in result.stderr
    loaded = LoadedModel(model, "bs_roformer", read_config(config), stem_names(read_config(config), 4), "test")
    separator = Separator(loaded, device="cpu")
    for index in range(3):
        mix = torch.from_numpy(sf.read(songs / f"song{index}.wav", dtype="float32")[0].T.copy())
        expected = separator.separate_tensor(mix)
        for stem in STEMS:
            written = torch.from_numpy(sf.read(tmp_path / "out" / f"song{index}" / f"{stem}.wav", dtype="float32")[0].T.copy())
            assert (written - expected[stem]).abs().max() <= 1e-6
