"""Does `bs-roformer train` learn at least as well as a plain training loop? Held-out SDR after a fixed step count.

    python bench/train_quality.py [--data DIR] [--dataset chorales|synthetic] [--steps 300] [--threads 2]
                                  [--runs plain,remix,aligned,...] [--quick]

Data (`--dataset chorales`, the default): Bach chorales from music21's corpus, each of the four voices rendered
by fluidsynth with its own General MIDI instrument (a woodwind quartet) into its own stem: coherent ensemble
music, where the voices share harmony and rhythm. 60 pieces train, 15 are held out; `--data DIR` keeps the
rendering for the next run. Needs `apt-get install fluidsynth fluid-soundfont-gm` and `pip install music21`.
`--dataset synthetic` uses bs_roformer's generated pop-like 4-stem music instead (no extra tools).

Every run trains the same model from the same initialisation (BSRoformer dim 64, depth 2, 4 heads x 32,
4 stems, upstream bs-roformer 0.5.1 settings) with Adam at 5e-4 (`--lr`) for `--steps` steps of 4 x 65536-sample
chunks, then separates the held-out pieces with the chunked separator and scores global SDR (MDX). Every run
but aligned-sdr trains on the model's own loss (L1 of the waveform + multi-resolution STFT, model.loss: t+mrstft):
  plain          a ten-line loop: random piece, random offset, the real mixture, no augmentation
  aligned        `bs-roformer train` with the model's own loss: all stems of a chunk from one piece and offset,
                 no augmentation: the command doing what the plain loop does
  aligned-aug    aligned, with the augmentation MSST's configs usually switch on: gain 0.5..1.5, channel swap
                 and polarity flip (p 0.5 each) per stem
  remix          stems remixed across pieces (training.remix_stems: true), no augmentation
  remix-aug      remixed and augmented
  aligned-aug-cosine  aligned and augmented, the learning rate decaying to 0 over the run (training.scheduler: cosine)
  aligned-warmup      aligned, the learning rate rising linearly over the first 10 % of the steps (warmup_steps)
  aligned-warmup-cosine  the same warm-up, then decaying to 0 (scheduler: cosine)
  aligned-sdr    the command's defaults: aligned, trained on minus the SDR in dB (model.loss: sdr)
Each command run reports its raw weights, its EMA weights (training.ema_decay 0.99, ema_warmup off) and an
EMA with warm-up (training.ema_warmup, the default) tracked alongside (the average never feeds back into
training, so one run serves all three). Results compare per step, not per second. Two 2-thread jobs on 2
cores slow each other ~10x: run one at a time, or runs side by side with --threads 1 each (a 300-step run
then takes about 50 minutes to train, 30 with minus the SDR, plus about 6 minutes per scored set of weights).
"""

import argparse
import copy
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import soundfile
import torch
from torch.optim.swa_utils import AveragedModel

from bs_roformer.inference import LoadedModel, Separator
from bs_roformer.inference.config import model_from_config
from bs_roformer.metrics import global_sdr
from bs_roformer.training import FullTrackDataset, Trainer, evaluate, find_tracks, write_synthetic_dataset
from bs_roformer.training.trainer import ema_update

VOICES = ["soprano", "alto", "tenor", "bass"]
SYNTHETIC_STEMS = ["vocals", "drums", "bass", "other"]
# General MIDI programs (0-based): flute, oboe, clarinet, bassoon
INSTRUMENTS = {"soprano": 73, "alto": 68, "tenor": 71, "bass": 70}
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 44100
COMMAND_RUNS = {
    "aligned": dict(remix_stems=False, augment=False),
    "aligned-aug": dict(remix_stems=False, augment=True),
    "remix": dict(remix_stems=True, augment=False),
    "remix-aug": dict(remix_stems=True, augment=True),
    "aligned-aug-cosine": dict(remix_stems=False, augment=True, scheduler="cosine"),
    "aligned-warmup": dict(remix_stems=False, augment=False, warmup=True),
    "aligned-warmup-cosine": dict(remix_stems=False, augment=False, warmup=True, scheduler="cosine"),
    "aligned-sdr": dict(remix_stems=False, augment=False, loss="sdr"),
}
SPLIT_SEED = 0  # the same pieces train and are held out whatever --seed, so that runs of any seed compare
WARMUP_FRACTION = 0.1  # of the run's steps, for the warm-up runs
AUGMENTATIONS = {"enable": True, "loudness": True, "loudness_min": 0.5, "loudness_max": 1.5,
                 "all": {"channel_shuffle": 0.5, "random_polarity": 0.5}}
# upstream bs-roformer 0.5.1's conventions (value residual, no DC zeroing, length not restored)
MODEL = dict(dim=64, depth=2, heads=4, dim_head=32, stereo=True, num_stems=4, value_residual=True, zero_dc=False,
             match_input_audio_length=False)


# --- data --------------------------------------------------------------------------------------------------


def render_chorales(root: Path, train: int, held_out: int) -> None:
    """root/train/<piece>/{soprano,alto,tenor,bass,mixture}.wav and root/held_out/..., each voice its own stem."""
    from music21 import corpus, instrument

    if not SOUNDFONT.is_file() or shutil.which("fluidsynth") is None:
        raise SystemExit("rendering needs fluidsynth and its General MIDI soundfont: apt-get install fluidsynth fluid-soundfont-gm")
    pieces = []
    for name in corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename"):
        score = corpus.parse(name)
        if [part.partName for part in score.parts] == ["Soprano", "Alto", "Tenor", "Bass"]:
            pieces.append((name.replace("/", "_"), score))
        if len(pieces) >= 2 * (train + held_out):  # enough to draw from
            break
    random.Random(SPLIT_SEED).shuffle(pieces)
    if len(pieces) < train + held_out:
        raise SystemExit(f"music21's corpus has only {len(pieces)} four-voice chorales")
    for split, chosen in (("train", pieces[:train]), ("held_out", pieces[train : train + held_out])):
        for name, score in chosen:
            folder = root / split / name
            if (folder / "mixture.wav").is_file():
                continue
            with tempfile.TemporaryDirectory() as tmp:
                stems = [_render_voice(part, INSTRUMENTS[voice], Path(tmp) / voice, instrument) for voice, part in zip(VOICES, score.parts)]
            length = max(stem.shape[0] for stem in stems)
            stems = [np.pad(stem, ((0, length - stem.shape[0]), (0, 0))) for stem in stems]
            staging = folder.with_name(folder.name + ".partial")
            staging.mkdir(parents=True, exist_ok=True)
            for voice, stem in zip(VOICES, stems):
                soundfile.write(staging / f"{voice}.wav", stem, SAMPLE_RATE, subtype="FLOAT")
            soundfile.write(staging / "mixture.wav", np.sum(stems, axis=0), SAMPLE_RATE, subtype="FLOAT")
            staging.rename(folder)


def _render_voice(part, program: int, stem: Path, instrument) -> np.ndarray:
    """(samples, 2) float32 audio of one voice played by a General MIDI program."""
    part = copy.deepcopy(part)
    for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
        part.remove(old, recurse=True)
    part.insert(0, instrument.instrumentFromMidiProgram(program))
    part.write("midi", fp=str(stem.with_suffix(".mid")))
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.4", "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav",
                    "-F", str(stem.with_suffix(".wav")), str(SOUNDFONT), str(stem.with_suffix(".mid"))],
                   check=True, capture_output=True)
    audio, rate = soundfile.read(stem.with_suffix(".wav"), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    return audio


def prepare_data(args) -> List[str]:
    """Write (or reuse) the data set in args.data; returns its stem names."""
    if args.dataset == "synthetic":
        if not (args.data / "held_out").is_dir():
            write_synthetic_dataset(args.data / "train", tracks=args.train_pieces, seconds=30, sample_rate=SAMPLE_RATE)
            write_synthetic_dataset(args.data / "held_out", tracks=args.held_out_pieces, seconds=args.held_out_seconds, sample_rate=SAMPLE_RATE, seed=1000)
        return SYNTHETIC_STEMS
    render_chorales(args.data, args.train_pieces, args.held_out_pieces)
    return VOICES


# --- training ----------------------------------------------------------------------------------------------


def config_for(stems: List[str], args, remix_stems: bool = False, augment: bool = False, scheduler: str = "constant",
               warmup: bool = False, loss: str = "t+mrstft") -> dict:
    return {
        "audio": {"chunk_size": args.chunk_size, "sample_rate": SAMPLE_RATE, "num_channels": 2},
        "model": dict(MODEL, loss=loss),
        "training": {"model_type": "bs_roformer", "instruments": stems, "batch_size": 4, "lr": args.lr, "optimizer": "adam",
                     "num_steps": args.steps, "num_epochs": 1, "scheduler": scheduler, "ema_decay": 0.99, "ema_warmup": False,
                     "remix_stems": remix_stems, "seed": args.seed,
                     "warmup_steps": round(WARMUP_FRACTION * args.steps) if warmup else 0},
        "augmentations": AUGMENTATIONS if augment else {"enable": False},
        "inference": {"chunk_size": args.chunk_size * 2, "num_overlap": 2, "batch_size": 2},
    }


def train_plain(config: dict, stems: List[str], train_root: Path, steps: int, seed: int) -> torch.nn.Module:
    """The loop a researcher writes first: random piece, random offset, the real mixture."""
    torch.manual_seed(seed)
    model = model_from_config(config, "bs_roformer")
    optimizer = torch.optim.Adam(model.parameters(), lr=config["training"]["lr"])
    tracks, chunk, rng = find_tracks(train_root, stems), config["audio"]["chunk_size"], np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        mixtures, targets = [], []
        for track in rng.choice(tracks, size=config["training"]["batch_size"]):
            start = int(rng.integers(0, max(track.frames - chunk, 1)))
            read = lambda path: soundfile.read(path, start=start, frames=chunk, dtype="float32", always_2d=True, fill_value=0)[0].T  # noqa: E731
            mixtures.append(read(track.mixture))
            targets.append(np.stack([read(track.stems[stem]) for stem in stems]))
        loss = model(torch.from_numpy(np.stack(mixtures)), target=torch.from_numpy(np.stack(targets)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


WEIGHTS = ("raw", "EMA 0.99", "EMA 0.99 + warm-up")


def train_command(config: dict, train_root: Path, steps: int) -> Dict[str, torch.nn.Module]:
    """`bs-roformer train` through its Python API; its raw and EMA weights, and an EMA with warm-up beside it."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, train_root.parent, Path(out) / "run", valid=None, progress=False, max_steps=steps)
        warmed = AveragedModel(trainer.model, multi_avg_fn=ema_update(0.99, warmup=True), use_buffers=True)
        trainer.optimizer.register_step_post_hook(lambda *_: warmed.update_parameters(trainer.model))
        trainer.train()
        return dict(zip(WEIGHTS, (trainer.model, trainer.ema.module, warmed.module)))


def held_out_sdr(model: torch.nn.Module, config: dict, stems: List[str], root: Path) -> List[float]:
    """Global SDR per stem on the held-out pieces (mean over pieces), then their mean."""
    loaded = LoadedModel(model=model.eval(), model_type="bs_roformer", config=config, stems=stems, source="bench")
    overall = evaluate(Separator(loaded, device="cpu"), root, measures=("global_sdr",), progress=False).overall
    return [overall[stem]["global_sdr"] for stem in [*stems, "mean"]]


def mixture_baseline(stems: List[str], root: Path) -> List[float]:
    scores = [[float(global_sdr(reference, mixture)) for reference in references]
              for _, mixture, references in FullTrackDataset(find_tracks(root, stems), stems)]
    per_stem = np.mean(scores, axis=0).tolist()
    return [*per_stem, float(np.mean(per_stem))]


# --- the table ---------------------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="where the rendered pieces are kept (default: a temporary folder)")
    parser.add_argument("--dataset", choices=["chorales", "synthetic"], default="chorales")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--chunk-size", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the training runs (the chorales' split into train and held out stays the same)")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam's learning rate, every run (the peak after a warm-up)")
    parser.add_argument("--train-pieces", type=int, default=60)
    parser.add_argument("--held-out-pieces", type=int, default=15)
    parser.add_argument("--runs", default=",".join(["plain", *COMMAND_RUNS]), help="comma-separated, from: plain, " + ", ".join(COMMAND_RUNS))
    parser.add_argument("--weights", default="raw,ema,ema-warmup",
                        help="the command runs' weights to score, comma-separated from raw, ema, ema-warmup (each is a full separation of the held-out set)")
    parser.add_argument("--held-out-seconds", type=float, default=30.0, help="length of the synthetic set's held-out tracks")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 steps, 4 + 2 pieces, short chunks")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.train_pieces, args.held_out_pieces, args.chunk_size = 3, 4, 2, 16384
    runs = args.runs.split(",")
    unknown = sorted(set(runs) - {"plain", *COMMAND_RUNS})
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from plain, {', '.join(COMMAND_RUNS)}")
    weight_names = dict(zip(("raw", "ema", "ema-warmup"), WEIGHTS))
    if not set(args.weights.split(",")) <= set(weight_names):
        parser.error(f"--weights takes raw, ema and ema-warmup, got {args.weights}")
    scored = [weight_names[name] for name in args.weights.split(",")]
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        args.data = args.data or Path(tmp) / args.dataset
        start = time.perf_counter()
        stems = prepare_data(args)
        print(f"data: {args.dataset} in {args.data} ({time.perf_counter() - start:.0f} s)", flush=True)
        train_root, held_out = args.data / "train", args.data / "held_out"

        rows = {"mixture as the estimate": (mixture_baseline(stems, held_out), None)}
        for run in runs:
            start = time.perf_counter()
            if run == "plain":
                config = config_for(stems, args)  # aligned, unaugmented: what the loop reads
                models = {"raw": train_plain(config, stems, train_root, args.steps, args.seed)}
            else:
                config = config_for(stems, args, **COMMAND_RUNS[run])
                models = train_command(config, train_root, args.steps)
            seconds = time.perf_counter() - start
            for weights, model in models.items():
                if run != "plain" and weights not in scored:
                    continue
                rows[f"{run}, {weights}" if run != "plain" else "plain loop"] = (held_out_sdr(model, config, stems, held_out), seconds)
            print(f"{run}: trained in {seconds:.0f} s", flush=True)

    print(f"\nHeld-out global SDR (dB) after {args.steps} steps of 4 x {args.chunk_size} samples, {args.dataset}, "
          f"{args.train_pieces} pieces to train, {args.held_out_pieces} held out, {args.threads} threads")
    header = f"| training | {' | '.join(stems)} | mean | training time |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, (sdrs, seconds) in rows.items():
        took = f"{seconds:.0f} s" if seconds is not None else "-"
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in sdrs[:-1]) + f" | **{sdrs[-1]:.2f}** | {took} |")


if __name__ == "__main__":
    main()
