"""Separation time and peak memory for 1-minute and 10-minute stereo files, and their ratios.

    python bench/separate_long.py [--minutes 1 10] [--threads 2]

Each measurement runs in a fresh process (peak RSS is per process). A small BS-RoFormer (dim 64, depth 2,
random weights: speed does not depend on them) separates a generated stereo WAV from disk to disk, and
the same audio as an in-memory tensor. Streaming should take ~10x the time for 10x the audio and about
the same memory; the tensor API holds input and output, so its memory grows with the length.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

RATE = 44100
CONFIG = {
    "audio": {"chunk_size": 88200, "sample_rate": RATE},
    "model": dict(
        dim=64, depth=2, stereo=True, num_stems=4, time_transformer_depth=1, freq_transformer_depth=1,
        heads=4, dim_head=16, stft_hop_length=441,
    ),
    "training": {"model_type": "bs_roformer", "instruments": ["drums", "bass", "other", "vocals"]},
    "inference": {"batch_size": 2, "num_overlap": 2},
}

CHILD = r"""
import json, sys, time, torch
from bs_roformer import Separator, read_audio
from peak_rss import peak_rss_mb
torch.set_num_threads(int(sys.argv[5]))
separator = Separator(sys.argv[1], config=sys.argv[2], device="cpu")
start = time.perf_counter()
if sys.argv[4] == "file":
    separator.separate_file(sys.argv[3], sys.argv[3] + ".out", overwrite=True)
else:
    mix, rate = read_audio(sys.argv[3])
    separator.separate_tensor(mix, rate)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))
"""


def write_song(path: Path, minutes: float) -> None:
    """A stereo WAV of tones and noise, written in blocks."""
    rng = np.random.default_rng(0)
    block = RATE * 10
    with sf.SoundFile(str(path), "w", RATE, 2, "PCM_16") as file:
        for start in range(0, int(minutes * 60 * RATE), block):
            t = (start + np.arange(block)) / RATE
            tone = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t)
            file.write(np.stack([tone, tone[::-1]], axis=1) + 0.02 * rng.standard_normal((block, 2)))


def measure(checkpoint: Path, config: Path, song: Path, mode: str, threads: int) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(checkpoint), str(config), str(song), mode, str(threads)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs=2, default=(1, 10))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from bs_roformer import BSRoformer

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        torch.manual_seed(0)
        torch.save(BSRoformer(**CONFIG["model"]).state_dict(), folder / "model.ckpt")
        (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
        results = {}
        for minutes in args.minutes:
            song = folder / f"song_{minutes:g}min.wav"
            write_song(song, minutes)
            for mode in ("file", "tensor"):
                started = time.perf_counter()
                results[mode, minutes] = measure(folder / "model.ckpt", folder / "config.yaml", song, mode, args.threads)
                print(f"{mode:6s} {minutes:5g} min: {results[mode, minutes]['seconds']:7.1f} s, "
                      f"peak {results[mode, minutes]['peak_mb']:7.0f} MB  ({time.perf_counter() - started:.0f} s with start-up)")

    short, long = args.minutes
    print(f"\n{'':28s}{'time ratio':>12s}{'memory ratio':>14s}   ({long:g} min / {short:g} min)")
    for mode, label in (("file", "streaming file -> files"), ("tensor", "tensor in memory")):
        time_ratio = results[mode, long]["seconds"] / results[mode, short]["seconds"]
        memory_ratio = results[mode, long]["peak_mb"] / results[mode, short]["peak_mb"]
        print(f"{label:28s}{time_ratio:12.2f}{memory_ratio:14.2f}")


if __name__ == "__main__":
    main()
