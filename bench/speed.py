"""Speed and memory of bs_roformer against upstream bs-roformer 0.5.1 (row H, a HyperACE v2 mask head:
against splifft 0.0.9), measured in the same run.

    python bench/speed.py              # configurations A, M, C and the training step (~25 min on 2 cores)
    python bench/speed.py --quick      # tiny configurations: a smoke test (CI runs it), timings meaningless
    python bench/speed.py --only A C   # a subset
    python bench/speed.py --only V1    # frame-transformer V1 at the published size against its reference files

Both implementations get the same weights and input. Times are the median of --runs runs after one
warm-up, alternating ours and upstream, with 2 threads. Peak memory is the peak RSS of a fresh process that
builds one implementation and runs it once. GFLOP/s counts the matrix work (matmuls and attention, from
torch's FlopCounterMode) per second, against this machine's matmul peak measured in the same run.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import references  # noqa: E402  (installs and imports the upstream reference)
import splifft_peer  # noqa: E402

# name: (model, constructor keywords, batch, samples, training step)
CONFIGS = {
    "A": ("bs", dict(dim=512, depth=12, stereo=True, time_transformer_depth=1, freq_transformer_depth=1, stft_hop_length=441), 1, 352800, False),
    "M": ("mel", dict(dim=384, depth=6, num_bands=60, stereo=True, time_transformer_depth=1, freq_transformer_depth=1, stft_hop_length=441), 1, 352800, False),
    "C": ("bs", dict(dim=128, depth=4, stereo=True), 1, 131072, False),
    "C-train": ("bs", dict(dim=128, depth=4, stereo=True), 2, 131072, True),
    # HyperACE v2 mask head (unwa), against splifft 0.0.9 instead of upstream
    "H": ("hyperace", dict(dim=256, depth=4, chunk_size=131072), 1, 131072, False),
    # the published frame-transformer V1 (206 M parameters) on the magnitudes of a 30 s stereo track
    "V1": ("ft", dict(channels=8, num_heads=8, expansion=24, n_fft=2048), 1, 30 * 44100, False),
}
QUICK = {
    "A": ("bs", dict(dim=32, depth=1, stereo=True, time_transformer_depth=1, freq_transformer_depth=1, stft_hop_length=441), 1, 22050, False),
    "M": ("mel", dict(dim=32, depth=1, num_bands=16, stereo=True, time_transformer_depth=1, freq_transformer_depth=1, stft_hop_length=441), 1, 22050, False),
    "C-train": ("bs", dict(dim=32, depth=1, stereo=True), 2, 16384, True),
    "H": ("hyperace", dict(dim=32, depth=1, chunk_size=4096), 1, 4096, False),
    "V1": ("ft", dict(channels=2, num_heads=2, expansion=2, n_fft=256), 1, 44100, False),
}
# our settings that compute what upstream 0.5.1 computes
AS_UPSTREAM = {"bs": dict(value_residual=True, zero_dc=False, match_input_audio_length=False), "mel": dict(zero_dc=False)}


class OnMagnitudes(torch.nn.Module):
    """A frame-transformer network (the reference's forward, or our mask_logits) on the scaled magnitudes of
    (b, 2, t) audio, so it runs where the band-split models run; the STFT is the same for both."""

    def __init__(self, network, method: str, n_fft: int):
        super().__init__()
        self.network, self.method, self.n_fft = network, method, n_fft

    def forward(self, audio):
        window = torch.hann_window(self.n_fft)
        spec = torch.stft(audio.flatten(0, 1), self.n_fft, self.n_fft // 2, window=window, return_complex=True)
        magnitude = spec.abs().unflatten(0, audio.shape[:2])[:, :, : self.n_fft // 2]
        return getattr(self.network, self.method)(magnitude / magnitude.amax())


def build_frame_transformer(implementation: str, kwargs: dict, state_dict=None):
    import frame_transformer_reference
    from bs_roformer import FrameTransformer

    if implementation == "upstream":
        network = frame_transformer_reference.frame_transformer().V1(**kwargs, dropout=0.0)
        return OnMagnitudes(network, "__call__", kwargs["n_fft"])  # the reference overrides __call__, not forward
    wrapped = OnMagnitudes(FrameTransformer(**kwargs, dropout=0.0), "mask_logits", kwargs["n_fft"])
    if state_dict is not None:
        wrapped.load_state_dict(state_dict, strict=True)
    return wrapped


def build(implementation: str, model: str, kwargs: dict, state_dict=None):
    """One implementation with dropout off; ours loads the given (upstream) weights strictly. "upstream" is
    upstream bs-roformer 0.5.1, or for the frame-transformer its reference files."""
    if model == "ft":
        return build_frame_transformer(implementation, kwargs, state_dict)
    kwargs = dict(kwargs, attn_dropout=0.0, ff_dropout=0.0)
    if model == "hyperace":  # the "upstream" implementation of this row is splifft's
        return splifft_peer.build(implementation, kwargs, state_dict)
    if model == "mel":
        kwargs["linear_transformer_depth"] = 0
    if implementation == "upstream":
        upstream = references.upstream()
        return (upstream.BSRoformer if model == "bs" else upstream.MelBandRoformer)(**kwargs)
    from bs_roformer import BSRoformer, MelBandRoformer
    from bs_roformer.inference.loading import load_weights

    ours = (BSRoformer if model == "bs" else MelBandRoformer)(**kwargs, **AS_UPSTREAM[model])
    if state_dict is not None:
        load_weights(ours, state_dict)  # also maps upstream Mel's empty linear-layer slot
    return ours


def inputs(batch: int, samples: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 2, samples, generator=generator) * 0.1
    target = torch.randn(batch, 2, samples, generator=generator) * 0.1
    return audio, target


def step(model, audio, target, training: bool, precision: str = "fp32"):
    """One inference forward, or one training forward + backward; returns the output or the loss."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    if training:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast:
            loss = model(audio, target=target)
        loss.backward()
        return loss.detach()
    model.eval()
    with torch.inference_mode(), autocast:
        return model(audio).float()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_peak(dtype: torch.dtype, size: int = 2048) -> float:
    """GFLOP/s of a large square matmul."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    seconds = min(timed(lambda: a @ b) for _ in range(5))
    return 2 * size**3 / seconds / 1e9


def _register_cpu_attention_flops() -> None:
    """FlopCounterMode has no formula for the CPU flash-attention kernels: q k^T and (attention) v are
    2 n m d floating-point operations each per head forward, and the backward does twice that."""
    from torch.utils.flop_counter import register_flop_formula

    def attention(query_shape, key_shape) -> int:
        *batch, n, d = query_shape
        return 4 * n * key_shape[-2] * d * torch.Size(batch).numel()

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return attention(query, key)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return 2 * attention(query, key)

    for op, formula in (
        (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, forward),
        (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward, backward),
    ):
        try:
            register_flop_formula(op)(formula)
        except RuntimeError:  # a newer torch has its own
            pass


def matrix_flops(model, audio, target, training: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        step(model, audio, target, training)
    return counter.get_total_flops()


def peak_memory_mb(implementation: str, name: str, weights: Path, quick: bool) -> float:
    """Peak RSS of a fresh process that runs one step of one implementation."""
    child = f"""
import sys, torch
sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.path.insert(0, {str(ROOT)!r})
import speed
from peak_rss import peak_rss_mb
torch.set_num_threads(2)
model, kwargs, batch, samples, training = (speed.QUICK if {quick} else speed.CONFIGS)[{name!r}]
state = torch.load({str(weights)!r}, weights_only=True)
net = speed.build({implementation!r}, model, kwargs, state if {implementation!r} == "ours" else None)
if {implementation!r} == "upstream":
    net.load_state_dict(state)
del state
audio, target = speed.inputs(batch, samples)
speed.step(net, audio, target, training)
print(peak_rss_mb())
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return (10 * torch.log10(reference.pow(2).sum() / (estimate - reference).pow(2).sum())).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    args = parser.parse_args()
    torch.set_num_threads(2)
    _register_cpu_attention_flops()
    configs = QUICK if args.quick else CONFIGS
    names = [name for name in configs if args.only is None or name in args.only]
    runs = 1 if args.quick else args.runs

    # a CPU without native bf16 (no AVX512-BF16 / AMX) runs bf16 matmuls through a slow fallback
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16, size=512)
    native_bf16 = peak16 > peak32
    print(f"matmul peak on this machine at the start (2 threads): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s"
          f"{'' if native_bf16 else ' (no native bf16: the bf16 rows are skipped)'}\n")
    header = f"{'config':10s}{'ours s':>9s}{'upstream s':>12s}{'speed-up':>10s}{'ours MB':>10s}{'upstr. MB':>11s}{'GFLOP/s':>9s}{'peak':>7s}{'of peak':>9s}  agreement"
    print(header)
    print("-" * len(header))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            model, kwargs, batch, samples, training = configs[name]
            torch.manual_seed(0)
            upstream = build("upstream", model, kwargs)
            weights = Path(folder) / f"{name}.pt"
            torch.save(upstream.state_dict(), weights)
            ours = build("ours", model, kwargs, upstream.state_dict())
            audio, target = inputs(batch, samples)

            expected, got = step(upstream, audio, target, training), step(ours, audio, target, training)  # warm-up
            if training:
                agreement = max((a.grad - b.grad).abs().max().item() for a, b in zip(ours.parameters(), upstream.parameters()) if a.grad is not None)
                agreement /= max(p.grad.abs().max().item() for p in upstream.parameters() if p.grad is not None)
                agreement_text = f"gradients within {agreement:.1e} of the largest"
            else:
                agreement = ((got - expected).abs().max() / expected.abs().max()).item()
                agreement_text = f"outputs within {agreement:.1e} of the scale"
                if model == "hyperace":
                    agreement_text += " (vs splifft; at random weights its norm chains amplify float32 rounding)"
            times = {"ours": [], "upstream": []}
            for _ in range(runs):
                times["ours"].append(timed(lambda: step(ours, audio, target, training)))
                times["upstream"].append(timed(lambda: step(upstream, audio, target, training)))
            ours_s, upstream_s = statistics.median(times["ours"]), statistics.median(times["upstream"])
            flops = matrix_flops(ours, audio, target, training)
            memory = {impl: float("nan") if args.no_memory else peak_memory_mb(impl, name, weights, args.quick) for impl in times}
            gflops = flops / ours_s / 1e9
            # this VM's throughput drifts (77 to 180 GFLOP/s seen): compare with the peak measured just now
            peak32 = max(matmul_peak(torch.float32), matmul_peak(torch.float32))
            print(f"{name:10s}{ours_s:9.2f}{upstream_s:12.2f}{upstream_s / ours_s:9.2f}x{memory['ours']:10.0f}{memory['upstream']:11.0f}"
                  f"{gflops:9.0f}{peak32:7.0f}{gflops / peak32:9.0%}  {agreement_text}", flush=True)
            rows.append(dict(config=name, ours=ours_s, upstream=upstream_s, memory=memory, gflops=gflops, peak=peak32, agreement=agreement))

            if native_bf16 and (name == "A" or (args.quick and name == names[0])):
                bf16_s = statistics.median([timed(lambda: step(ours, audio, target, training, "bf16")) for _ in range(runs + 1)][1:] or [0])
                snr = snr_db(step(ours, audio, target, training, "bf16"), got)
                print(f"{name + ' bf16':10s}{bf16_s:9.2f}{upstream_s:12.2f}{upstream_s / bf16_s:9.2f}x{'':21s}{flops / bf16_s / 1e9:9.0f}{peak16:7.0f}"
                      f"{flops / bf16_s / 1e9 / peak16:9.0%}  SNR {snr:.1f} dB against our fp32 (of bf16 peak)", flush=True)
                rows.append(dict(config=name + " bf16", ours=bf16_s, upstream=upstream_s, snr=snr))
            del upstream, ours
    if args.quick:
        print("\n(quick mode: tiny models, timings are not meaningful)")
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
