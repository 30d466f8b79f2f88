"""Speed of the attention/block variants against their MSST reference code, measured in the same run:
PoPE attention (MSST bs_roformer.py with pope-pytorch) and BS-Conformer (MSST bs_conformer.py).

    python bench/variants_speed.py            # 8 s of stereo audio, dim 128, depth 4 (~10 min on 2 cores)
    python bench/variants_speed.py --quick    # tiny configurations, one run: a smoke test, timings meaningless

Both implementations get the same weights and input; times are the median of --runs runs after one warm-up,
alternating ours and the reference, with 2 threads. Inference forward and one training step (forward +
backward). The last line on stderr is the rows as JSON.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import references  # noqa: E402  (imports the MSST reference files and pope-pytorch)

BANDS = dict(dim=128, depth=4, heads=8, dim_head=64, stereo=True, num_stems=2, stft_hop_length=441)
QUICK = dict(dim=32, depth=1, heads=2, dim_head=16, stereo=True, num_stems=2, stft_hop_length=441,
             multi_stft_resolutions_window_sizes=(2048, 512))
# name: (reference module, reference class, our class, keywords)
VARIANTS = {
    "pope": ("bs_roformer", "BSRoformer", "BSRoformer", dict(use_pope=True, time_transformer_depth=1, freq_transformer_depth=1)),
    "bs-conformer": ("bs_conformer", "BSConformer", "BSConformer", dict(time_conformer_depth=1, freq_conformer_depth=1)),
}


def build_pair(variant: str, size: dict):
    module_name, reference_class, our_class, options = VARIANTS[variant]
    import bs_roformer

    kwargs = dict(size, attn_dropout=0.0, ff_dropout=0.0, **options)
    torch.manual_seed(0)
    reference = getattr(getattr(references.msst_bs_roformer_family(), module_name), reference_class)(**kwargs)
    ours = getattr(bs_roformer, our_class)(**kwargs)
    ours.load_state_dict(reference.state_dict(), strict=True)
    return ours, reference


def step(model, audio, target, training: bool):
    if training:
        model.train()
        model.zero_grad(set_to_none=True)
        model(audio, target=target).backward()
        return None
    model.eval()
    with torch.inference_mode():
        return model(audio)


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny configurations (a smoke test)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    size, samples = (QUICK, 8192) if args.quick else (BANDS, 8 * 44100)
    runs = 1 if args.quick else args.runs
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 2, samples, generator=generator) * 0.1
    target = torch.randn(1, 2, 2, samples, generator=generator) * 0.1  # 2 stems: MSST reads (b, n, s, t) targets

    rows = []
    print(f"{'variant':14s} {'mode':9s} {'ours s':>8s} {'MSST s':>8s} {'speed-up':>9s}")
    for variant in VARIANTS:
        ours, reference = build_pair(variant, size)
        expected, got = step(reference, audio, target, False), step(ours, audio, target, False)
        agreement = ((got - expected.reshape(got.shape)).abs().max() / expected.abs().max()).item()
        for training in (False, True):
            for model in (ours, reference):  # warm-up
                step(model, audio, target, training)
            timings = {"ours": [], "msst": []}
            for _ in range(runs):  # alternating, so both see the same machine load
                timings["ours"].append(median_seconds(lambda: step(ours, audio, target, training), 1))
                timings["msst"].append(median_seconds(lambda: step(reference, audio, target, training), 1))
            ours_s, msst_s = statistics.median(timings["ours"]), statistics.median(timings["msst"])
            mode = "training" if training else "inference"
            print(f"{variant:14s} {mode:9s} {ours_s:8.3f} {msst_s:8.3f} {msst_s / ours_s:8.2f}x")
            rows.append(dict(variant=variant, mode=mode, ours=ours_s, msst=msst_s, agreement=agreement))
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
