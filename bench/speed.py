"""Speed and memory of bs_roformer against upstream bs-roformer 0.5.1 and the MSST-lineage peers, in one run
(row H, a HyperACE v2 mask head: against splifft 0.0.9 in place of upstream).

    python bench/speed.py              # configurations A, M, C and the training step (about two hours on 2 cores)
    python bench/speed.py --quick      # tiny configurations: a smoke test (CI runs it), timings meaningless
    python bench/speed.py --only A C   # a subset; --compile adds torch.compile, --no-peers / --no-onnx drop rows
    python bench/speed.py --only V1    # frame-transformer V1 at the published size against its reference files
    python bench/speed.py --only loss  # the multi-resolution STFT loss + backward against its two-transform form

One table per configuration and precision (bf16 where the CPU has native bf16). Rows: ours; ours in ONNX
Runtime; audio-separator 0.47.1 and splifft 0.0.9 on the same MSST-lineage weights as ours (A and M); ours
with upstream's settings and upstream 0.5.1 on upstream-lineage weights. Every implementation gets the same
input; times are the median of --runs runs after one warm-up, alternating, with 2 threads, and each is
compared with ours on the same weights. Peak memory is the peak RSS of a fresh process that builds one
implementation and runs it once. ONNX Runtime is timed in a fresh process of its own before the other rows
(its session for A peaks at 20 GB, too much beside them on a 24 GB machine). GFLOP/s counts the matrix work
(matmuls and attention, from torch's FlopCounterMode) per second, against this machine's matmul peak of that
precision measured just before.
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
from helpers import relative_difference, two_transform_mrstft  # noqa: E402

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
    # 9 bands keep the quick ONNX export short
    "A": ("bs", dict(dim=32, depth=1, stereo=True, time_transformer_depth=1, freq_transformer_depth=1, stft_hop_length=441,
                     freqs_per_bands=(128,) * 8 + (1,)), 1, 22050, False),
    "M": ("mel", dict(dim=32, depth=1, num_bands=16, stereo=True, time_transformer_depth=1, freq_transformer_depth=1, stft_hop_length=441), 1, 22050, False),
    "C-train": ("bs", dict(dim=32, depth=1, stereo=True), 2, 16384, True),
    "H": ("hyperace", dict(dim=32, depth=1, chunk_size=4096), 1, 4096, False),
    "V1": ("ft", dict(channels=2, num_heads=2, expansion=2, n_fft=256), 1, 44100, False),
}
# the multi-resolution STFT loss alone, at the training-quality bench's size: (batch, stems, channels, samples)
LOSS_SHAPE = {False: (4, 4, 2, 65536), True: (2, 2, 2, 8192)}
# our settings that compute what upstream 0.5.1 computes
AS_UPSTREAM = {"bs": dict(value_residual=True, zero_dc=False, match_input_audio_length=False), "mel": dict(zero_dc=False)}
# ours on MSST-lineage weights, set to compute what audio-separator's copy of the MSST models computes
AS_AUDIO_SEPARATOR = {"bs": dict(zero_dc=False, match_input_audio_length=False), "mel": dict(zero_dc=False)}
# the configurations where the MSST-lineage peers (audio-separator, splifft) run on the same weights
PEER_CONFIGS = ("A", "M")
LABELS = {
    "ours": "ours",
    "compile": "ours, torch.compile",
    "onnxruntime": "ours in ONNX Runtime",  # opset in the agreement column
    "audio-separator": f"audio-separator {references.AUDIO_SEPARATOR_VERSION}",
    "splifft": "splifft 0.0.9 (our STFT)",
    "ours-upstream": "ours as upstream 0.5.1",
    "upstream": f"upstream {references.UPSTREAM_VERSION}",
}
# the rows whose "upstream" is another reference: what it is
REFERENCE_NOTES = {
    "hyperace": "HyperACE v2 head; upstream is splifft 0.0.9: at random weights its norm chains amplify float32 rounding",
    "ft": "frame-transformer V1; upstream is the reference files at commit 90ab4e3",
}
# each row's speed is compared with ours on the same weights
BASELINE = {"upstream": "ours-upstream", "ours-upstream": "ours-upstream"}


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
    """The reference V1 ("upstream"), or ours on the reference's weights ("ours-upstream")."""
    import frame_transformer_reference
    from bs_roformer import FrameTransformer

    if implementation == "upstream":
        network = frame_transformer_reference.frame_transformer().V1(**kwargs, dropout=0.0)
        return _loaded(OnMagnitudes(network, "__call__", kwargs["n_fft"]), state_dict)  # the reference overrides __call__
    return _loaded(OnMagnitudes(FrameTransformer(**kwargs, dropout=0.0), "mask_logits", kwargs["n_fft"]), state_dict)


def build(implementation: str, model: str, kwargs: dict, state_dict=None, samples: int = 0, onnx_file=None):
    """One implementation with dropout off, in eval mode for inference; loads `state_dict` (its lineage's
    weights) when given. Returns an nn.Module (or a callable for the backends around our STFT)."""
    if model == "ft":  # its "upstream" is the reference files at 90ab4e3
        return build_frame_transformer(implementation, kwargs, state_dict)
    if model == "hyperace":  # its "upstream" is splifft's model, "ours-upstream" ours on splifft's weights
        if implementation == "ours-upstream":
            return splifft_peer.build("ours", kwargs, state_dict)
        return _loaded(splifft_peer.build("splifft", kwargs), state_dict)
    kwargs = dict(kwargs, attn_dropout=0.0, ff_dropout=0.0)
    if model == "mel":
        kwargs["linear_transformer_depth"] = 0
    if implementation == "upstream":
        upstream = references.upstream()
        net = (upstream.BSRoformer if model == "bs" else upstream.MelBandRoformer)(**kwargs)
        return _loaded(net, state_dict)
    if implementation == "audio-separator":
        separator = references.audio_separator()
        if model == "mel":
            del kwargs["linear_transformer_depth"]  # not a keyword of MSST's Mel model
        net = (separator.BSRoformer if model == "bs" else separator.MelBandRoformer)(**kwargs)
        return _loaded(net, state_dict)
    from bs_roformer import BSRoformer, MelBandRoformer
    from bs_roformer.inference.loading import load_weights

    settings = AS_UPSTREAM if implementation in ("ours-upstream",) else AS_AUDIO_SEPARATOR
    ours = (BSRoformer if model == "bs" else MelBandRoformer)(**kwargs, **settings[model])
    if state_dict is not None:
        load_weights(ours, state_dict)  # also maps upstream Mel's empty linear-layer slot
    if implementation in ("ours", "ours-upstream"):
        return ours
    from bs_roformer.inference.backends import AroundMasks, CompiledMasks

    ours.eval()
    if implementation == "compile":
        return AroundMasks(ours, CompiledMasks(ours))
    if implementation == "onnxruntime":
        from bs_roformer.inference.onnx_export import OnnxMasks, fingerprint

        return AroundMasks(ours, OnnxMasks(onnx_file, fingerprint(ours), threads=torch.get_num_threads()))
    if implementation == "splifft":
        return AroundMasks(ours, splifft_network(model, kwargs, ours, samples))
    raise ValueError(f"unknown implementation {implementation!r}")


def splifft_network(model: str, kwargs: dict, ours, samples: int):
    """splifft's spectrum -> masks network with our weights (it leaves the STFT to its caller)."""
    if model != "bs":
        # torchaudio's newest release (2.11.1) does not load its library under torch 2.13
        raise RuntimeError("splifft's Mel-Band RoFormer imports torchaudio's mel filter bank; torchaudio has no release for this torch")
    with references.splifft_bs_roformer() as splifft:
        params = splifft.BSRoformerParams(
            chunk_size=samples, output_stem_names=("vocals",), dim=kwargs["dim"], depth=kwargs["depth"],
            band_config=splifft.FixedBandsConfig(kind="fixed", **{key: tuple(kwargs[key]) for key in ("freqs_per_bands",) if key in kwargs}),
            stft_hop_length=kwargs["stft_hop_length"],
            stereo=kwargs["stereo"], time_transformer_depth=kwargs["time_transformer_depth"],
            freq_transformer_depth=kwargs["freq_transformer_depth"],
        )
        net = splifft.BSRoformer(params)
    # splifft keeps its rotary tables out of the state dict; the other keys are ours
    state = {key: value for key, value in ours.state_dict().items() if not key.endswith("rotary_embed.freqs")}
    net.load_state_dict(state, strict=True)
    return net.eval()


def _loaded(net, state_dict):
    if state_dict is not None:
        net.load_state_dict(state_dict, strict=True)
    return net


def inputs(batch: int, samples: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 2, samples, generator=generator) * 0.1
    target = torch.randn(batch, 2, samples, generator=generator) * 0.1
    return audio, target


def step(model, audio, target, training: bool, precision: str = "fp32"):
    """One inference forward (output as (b, values, t) float32), or one training forward + backward (the loss)."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    if training:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast:
            loss = model(audio, target=target)
        loss.backward()
        return loss.detach()
    if isinstance(model, torch.nn.Module):
        model.eval()
    with torch.inference_mode(), autocast:
        out = model(audio).float()
    return out.reshape(out.shape[0], -1, out.shape[-1])  # MSST's single stem has a stem axis, ours not


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


def in_fresh_process(implementation: str, name: str, weights: Path, quick: bool, onnx_file=None, runs: int = 0) -> dict:
    """One implementation of configuration `name` in a fresh process: one step, then `runs` timed steps.
    Returns {"peak_mb", "seconds" (one per timed step), "output" (the first step's, (b, values, t))}; a
    failure is reported and gives {"peak_mb": nan}."""
    output_file = weights.with_name(f"{name}-{implementation}-output.pt")
    child = f"""
import json, sys, torch
sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.path.insert(0, {str(ROOT)!r})
import speed
from peak_rss import peak_rss_mb
torch.set_num_threads(2)
model, kwargs, batch, samples, training = (speed.QUICK if {quick} else speed.CONFIGS)[{name!r}]
state = torch.load({str(weights)!r}, weights_only=True)
net = speed.build({implementation!r}, model, kwargs, state, samples, {str(onnx_file) if onnx_file else None!r})
del state
audio, target = speed.inputs(batch, samples)
torch.save(speed.step(net, audio, target, training), {str(output_file)!r})
seconds = [speed.timed(lambda: speed.step(net, audio, target, training)) for _ in range({runs})]
print(json.dumps(dict(peak_mb=peak_rss_mb(), seconds=seconds)))
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"  ({implementation} in a fresh process failed: {(result.stderr.strip().splitlines() or ['killed'])[-1]})")
        return dict(peak_mb=float("nan"))
    return dict(json.loads(result.stdout.strip().splitlines()[-1]), output=torch.load(output_file, weights_only=True))


def snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return (10 * torch.log10(reference.pow(2).sum() / (estimate - reference).pow(2).sum())).item()


def implementations_of(name: str, args, configs) -> list:
    """The rows of a configuration's tables, ours first."""
    model, training = configs[name][0], configs[name][4]
    if training or model in REFERENCE_NOTES:
        return ["ours-upstream", "upstream"]
    rows = ["ours"]
    if args.compile:
        rows.append("compile")
    if args.onnx and (not args.quick or name == next(iter(configs))):  # quick: one export is enough of a smoke test
        rows.append("onnxruntime")
    if args.peers and name in PEER_CONFIGS:
        rows += ["audio-separator", "splifft"]
    return rows + ["ours-upstream", "upstream"]


def loss_table(quick: bool, runs: int) -> list:
    """The multi-resolution STFT loss and its backward: ours (one transform of the difference per resolution)
    against the two-transform form the reference code computes, on the models' default resolutions."""
    from bs_roformer.modules.loss import MultiResolutionSTFTLoss

    ours = MultiResolutionSTFTLoss()
    forms = {"ours": ours, "two transforms (reference)": lambda e, t: two_transform_mrstft(
        e, t, ours.window_sizes, ours.hop_length, ours.min_n_fft, ours.normalized, ours.window_fn)}
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(LOSS_SHAPE[quick], generator=generator) * 0.1
    estimate = (target + 0.05 * torch.randn(target.shape, generator=generator)).requires_grad_(True)

    def loss_and_backward(form):
        estimate.grad = None
        loss = forms[form](estimate, target)
        loss.backward()
        return loss.detach(), estimate.grad.clone()

    results = {form: loss_and_backward(form) for form in forms}  # also the warm-up
    times = {form: [] for form in forms}
    for _ in range(runs):
        for form in forms:
            times[form].append(timed(lambda: loss_and_backward(form)))
    seconds = {form: statistics.median(values) for form, values in times.items()}
    (loss, gradient), (reference_loss, reference_gradient) = results["ours"], results["two transforms (reference)"]
    loss_difference = (loss - reference_loss).abs().item() / reference_loss.abs().item()
    print(f"\nloss: multi-resolution STFT loss + backward, {tuple(target.shape)} samples, windows {ours.window_sizes}, hop {ours.hop_length}")
    header = f"{'implementation':28s}{'seconds':>9s}{'x ours time':>13s}  agreement"
    print(header)
    print("-" * len(header))
    rows = []
    for form in forms:
        ratio = seconds[form] / seconds["ours"]
        agreement = 0.0 if form == "ours" else loss_difference  # as in the other tables: against ours
        text = "-" if form == "ours" else (f"loss within {agreement:.1e}, gradients within "
                                            f"{relative_difference(gradient, reference_gradient):.1e} of the scale")
        print(f"{form:28s}{seconds[form]:9.3f}{'-' if form == 'ours' else f'{ratio:.2f}x':>13s}  {text}", flush=True)
        rows.append(dict(config="loss", precision="fp32", implementation=form, seconds=seconds[form], ratio=ratio, agreement=agreement))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip audio-separator and splifft")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX Runtime rows")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (compile time reported apart)")
    parser.add_argument("--onnx-opset", type=int, default=18, help="opset of the ONNX Runtime rows (23: fused Attention and RMSNormalization)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    _register_cpu_attention_flops()
    configs = QUICK if args.quick else CONFIGS
    names = [name for name in configs if args.only is None or name in args.only]
    runs = 1 if args.quick else args.runs
    if args.onnx:
        try:
            import onnxruntime, onnxscript  # noqa: F401
        except ImportError:
            print("(onnxruntime / onnxscript not installed: no ONNX Runtime rows; pip install 'bs-roformer[onnx]')")
            args.onnx = False

    # a CPU without native bf16 (no AVX512-BF16 / AMX) runs bf16 matmuls through a slow fallback
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16, size=512)
    cpuinfo = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    flags = sorted({flag for flag in cpuinfo if flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")})
    # the flags when the CPU reports them (a loaded machine's matmul timings cannot tell)
    native_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(flags)) if cpuinfo else peak16 > peak32
    print(f"matmul peak on this machine at the start (2 threads): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s; "
          f"CPU flags {' '.join(flags) or 'unknown'}{'' if native_bf16 else ' (no native bf16: the bf16 tables are skipped)'}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            model, kwargs, batch, samples, training = configs[name]
            implementations = implementations_of(name, args, configs)
            torch.manual_seed(0)
            upstream_state = build("upstream", model, kwargs).state_dict()
            torch.manual_seed(0)
            msst_state = upstream_state if model in REFERENCE_NOTES else build("ours", model, kwargs).state_dict()
            weights = {}
            for lineage, state in (("upstream", upstream_state), ("msst", msst_state)):
                weights[lineage] = Path(folder) / f"{name}-{lineage}.pt"
                torch.save(state, weights[lineage])
            state_of = {impl: upstream_state if impl in ("upstream", "ours-upstream") else msst_state for impl in implementations}
            onnx_file, onnx_run, notes = None, {}, {}
            if "onnxruntime" in implementations:
                from bs_roformer.inference.onnx_export import export_onnx

                onnx_file = Path(folder) / f"{name}.onnx"
                export_seconds = timed(lambda: export_onnx(build("ours", model, kwargs, msst_state), onnx_file, opset=args.onnx_opset))
                # in a process of its own, before the others are built: ONNX Runtime's session for A peaks at
                # 20 GB (every head's attention matrix), which beside the other rows overran 24 GB
                onnx_run = in_fresh_process("onnxruntime", name, weights["msst"], args.quick, onnx_file, runs)
                if "output" not in onnx_run:
                    notes["onnxruntime"] = "its process failed (out of memory?)"
            audio, target = inputs(batch, samples)

            nets = {}
            for impl in implementations:
                if impl == "onnxruntime":
                    continue
                try:
                    nets[impl] = build(impl, model, kwargs, state_of[impl], samples, onnx_file)
                except RuntimeError as error:
                    notes[impl] = str(error)
            flops = matrix_flops(nets["ours" if "ours" in nets else "ours-upstream"], audio, target, training)
            precisions = ["fp32"]
            if native_bf16 and not training and model not in REFERENCE_NOTES and (name in ("A", "M") if not args.quick else name == names[0]):
                precisions.append("bf16")
            for precision in precisions:
                outputs, warm = {}, {}  # the warm-up's outputs are the ones compared
                for impl in nets:
                    start = time.perf_counter()
                    outputs[impl] = step(nets[impl], audio, target, training, precision)
                    warm[impl] = time.perf_counter() - start
                if precision == "fp32":
                    reference = outputs
                times = {impl: [] for impl in nets}
                for _ in range(runs):  # alternating, so drift hits every implementation alike
                    for impl in nets:
                        times[impl].append(timed(lambda: step(nets[impl], audio, target, training, precision)))
                seconds = {impl: statistics.median(values) for impl, values in times.items()}
                memory = {impl: float("nan") if args.no_memory or precision != "fp32"
                          else in_fresh_process(impl, name, weights["upstream" if impl in ("upstream", "ours-upstream") else "msst"], args.quick)["peak_mb"]
                          for impl in nets}
                if precision == "fp32" and "output" in onnx_run:  # an fp32 graph: no bf16 row
                    seconds["onnxruntime"], memory["onnxruntime"] = statistics.median(onnx_run["seconds"]), onnx_run["peak_mb"]
                    reference["onnxruntime"] = onnx_run["output"]
                peak = max(matmul_peak(torch.float32), matmul_peak(torch.float32)) if precision == "fp32" else matmul_peak(torch.bfloat16, size=512)
                description = f"{name} {precision}: {model.upper()} " + ", ".join(f"{key} {value}" for key, value in kwargs.items() if key in ("dim", "depth", "num_bands"))
                print(f"\n{description}, batch {batch}, {samples} samples{', training step' if training else ''}; "
                      f"{precision} matmul peak now {peak:.0f} GFLOP/s")
                header = f"{'implementation':28s}{'seconds':>9s}{'x ours time':>13s}{'peak MB':>9s}{'GFLOP/s':>9s}{'of peak':>9s}  agreement"
                print(header)
                print("-" * len(header))
                for impl in implementations:
                    if impl not in seconds:
                        print(f"{LABELS[impl]:28s}  n/a: {notes.get(impl, 'fp32 only')}")
                        continue
                    baseline = BASELINE.get(impl, "ours")
                    ratio = seconds[impl] / seconds[baseline]
                    gflops = flops / seconds[impl] / 1e9
                    if training:
                        if impl == "upstream":
                            grads = [(a.grad, b.grad) for a, b in zip(nets["ours-upstream"].parameters(), nets["upstream"].parameters()) if a.grad is not None]
                            agreement = max((a - b).abs().max().item() for a, b in grads) / max(b.abs().max().item() for _, b in grads)
                            text = f"gradients within {agreement:.1e} of the largest"
                        else:
                            agreement, text = 0.0, "-"
                    elif precision == "fp32":
                        agreement = relative_difference(reference[impl], reference[baseline])
                        text = "-" if impl == baseline else f"outputs within {agreement:.1e} of the scale"
                    else:
                        agreement = snr_db(outputs[impl], reference[baseline])
                        text = f"SNR {agreement:.1f} dB against {LABELS[baseline]} fp32"
                    if impl == "compile":
                        text += f"; first call {warm[impl]:.1f} s (compiling)"
                    if impl == "onnxruntime":
                        text += f"; opset {args.onnx_opset}, export {export_seconds:.1f} s"
                    faster = "-" if impl == baseline else f"{ratio:.2f}x"
                    if impl == "upstream" and model in REFERENCE_NOTES:
                        text += f" ({REFERENCE_NOTES[model]})"
                    print(f"{LABELS[impl]:28s}{seconds[impl]:9.2f}{faster:>13s}{memory[impl]:9.0f}{gflops:9.0f}{gflops / peak:9.0%}  {text}", flush=True)
                    rows.append(dict(config=name, precision=precision, implementation=impl, seconds=seconds[impl], ratio=ratio,
                                     memory=memory[impl], gflops=gflops, peak=peak, agreement=agreement))
                if precision == "bf16":
                    fp32_upstream = [row["seconds"] for row in rows if row["config"] == name and row["precision"] == "fp32" and row["implementation"] == "upstream"]
                    if fp32_upstream and "ours" in seconds:
                        print(f"ours bf16 is {fp32_upstream[0] / seconds['ours']:.2f}x faster than upstream fp32")
            del nets
    if args.only is None or "loss" in args.only:
        rows += loss_table(args.quick, runs)
    if args.quick:
        print("\n(quick mode: tiny models, timings are not meaningful)")
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
