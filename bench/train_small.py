"""Train a small BS-RoFormer and a small BSRNN for the same CPU budget on generated music; compare their test SDR.

    python bench/train_small.py [--seconds 300] [--threads 2] [--sample-rate 22050]

The data are written by `bs_roformer.training.write_synthetic_dataset` (8 training tracks, 2 test tracks,
4 stems: vocals, drums, bass, other). Both models train on the same seeded random remixes with Adam, then
separate the test tracks with the chunked separator; the table gives global SDR (MDX) per stem, and the
mixture itself as the estimate for scale (the "mixture baseline").
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bs_roformer import BSRNN, BSRoformer
from bs_roformer.inference import LoadedModel, Separator
from bs_roformer.metrics import global_sdr
from bs_roformer.training import FullTrackDataset, RandomChunkDataset, evaluate, find_tracks, write_synthetic_dataset

STEMS = ["vocals", "drums", "bass", "other"]


def build_models(sample_rate: int):
    stft = dict(stft_n_fft=1024, stft_hop_length=256, sample_rate=sample_rate, stereo=True, num_stems=len(STEMS))
    return {
        "BSRoformer": BSRoformer(dim=64, depth=2, heads=4, dim_head=16, time_transformer_depth=1, freq_transformer_depth=1,
                                 freqs_per_bands="v7", stft_win_length=1024, **stft),
        "BSRNN": BSRNN(dim=64, depth=2, hidden=64, freqs_per_bands="v7", **stft),
    }


def train_for(model: torch.nn.Module, dataset: RandomChunkDataset, seconds: float, lr: float) -> int:
    """Adam steps on batches of 4 chunks until `seconds` of wall time have passed; returns the step count."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    step, start = 0, time.perf_counter()
    loader = iter(torch.utils.data.DataLoader(dataset, batch_size=4))
    while time.perf_counter() - start < seconds:
        mixture, stems = next(loader)
        loss = model(mixture, target=stems)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="training budget per model (wall time)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_dataset(root / "train", tracks=8, seconds=10, sample_rate=args.sample_rate)
        write_synthetic_dataset(root / "test", tracks=2, seconds=10, sample_rate=args.sample_rate, seed=1000)
        train_tracks = find_tracks(root / "train", STEMS)
        # more items than any budget uses: each is a fresh random remix
        dataset = RandomChunkDataset(train_tracks, STEMS, chunk_size=args.sample_rate, length=1_000_000, seed=0)

        rows = {}
        for name, model in build_models(args.sample_rate).items():
            torch.manual_seed(0)
            steps = train_for(model, dataset, args.seconds, args.lr)
            config = {"audio": {"sample_rate": args.sample_rate, "chunk_size": args.sample_rate * 2},
                      "model": {}, "training": {"instruments": STEMS}, "inference": {"batch_size": 2, "num_overlap": 2}}
            loaded = LoadedModel(model=model, model_type=name, config=config, stems=STEMS, source="bench")
            result = evaluate(Separator(loaded, device="cpu"), root / "test", measures=("global_sdr",), progress=False)
            overall = result.overall
            parameters = sum(p.numel() for p in model.parameters())
            rows[name] = (f"{parameters / 1e6:.2f}M", steps, [overall[stem]["global_sdr"] for stem in [*STEMS, "mean"]])

        baseline = []
        for _, mixture, references in FullTrackDataset(find_tracks(root / "test", STEMS), STEMS):
            baseline.append([float(global_sdr(reference, mixture)) for reference in references])
        baseline = np.mean(baseline, axis=0).tolist()
        rows["mixture baseline"] = ("-", "-", [*baseline, float(np.mean(baseline))])

    print(f"\nTest global SDR (dB) after {args.seconds:.0f} s of training per model on {args.threads} threads, "
          f"{args.sample_rate} Hz synthetic 4-stem music")
    header = f"| model | parameters | steps | {' | '.join(STEMS)} | mean |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, (parameters, steps, sdrs) in rows.items():
        print(f"| {name} | {parameters} | {steps} | " + " | ".join(f"{value:.2f}" for value in sdrs) + " |")


if __name__ == "__main__":
    main()
