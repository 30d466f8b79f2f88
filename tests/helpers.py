"""Shared test utilities: deterministic test audio, tiny model configs, and tolerance checks that record
the largest differences seen (printed at the end of the run)."""

import http.server
import math
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
# name -> largest relative difference seen by `assert_relative_close`, for the end-of-run summary
LARGEST_DIFFERENCES: Dict[str, float] = {}

# small STFT so tests run fast on two cores: 129 bins
SMALL_STFT = dict(stft_n_fft=256, stft_hop_length=64, stft_win_length=256, multi_stft_resolutions_window_sizes=(256, 128))
SMALL_BANDS = (4, 4, 8, 8, 16, 16, 32, 41)  # adds up to 129 bins
TINY = dict(dim=32, depth=2, heads=2, dim_head=16, time_transformer_depth=1, freq_transformer_depth=1)


def make_audio(batch: int, channels: int, length: int, seed: int = 0) -> torch.Tensor:
    """Sines plus noise with a DC offset, (batch, channels, length), peak below 1."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 44100
    freqs = torch.rand(batch, channels, 3, 1, generator=generator) * 2000 + 60
    tones = torch.sin(2 * math.pi * freqs * t + torch.rand(batch, channels, 3, 1, generator=generator) * 6).sum(dim=2)
    noise = torch.randn(batch, channels, length, generator=generator)
    return 0.2 * tones / 3 + 0.05 * noise + 0.01


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move norm gains, biases and temperatures off their constant initial values, so weight-mapping
    mistakes cannot hide behind ones and zeros."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("gamma", "bias", "temperature")):
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    scale = reference.detach().abs().max().clamp_min(1e-30)
    return ((ours.detach() - reference.detach()).abs().max() / scale).item()


def assert_relative_close(name: str, ours: torch.Tensor, reference: torch.Tensor, tolerance: float = 1e-4) -> None:
    assert ours.shape == reference.shape, f"{name}: shape {tuple(ours.shape)} != reference {tuple(reference.shape)}"
    difference = relative_difference(ours, reference)
    LARGEST_DIFFERENCES[name] = max(difference, LARGEST_DIFFERENCES.get(name, 0.0))
    assert difference <= tolerance, f"{name}: max difference {difference:.3g} of the output scale > {tolerance}"


def tiny_config(model_type: str = "bs_roformer", **model_overrides) -> dict:
    """An MSST-format config of a tiny model: 4 stems, stereo, 256-point STFT, 4096-sample chunks."""
    model = dict(TINY, stereo=True, num_stems=4, stft_n_fft=256, stft_hop_length=64, stft_win_length=256)
    model.update(dict(freqs_per_bands=SMALL_BANDS) if model_type == "bs_roformer" else dict(num_bands=16))
    model.update(model_overrides)
    instruments = ["drums", "bass", "other", "vocals"][: model["num_stems"]] if model["num_stems"] > 1 else ["vocals", "other"]
    training = dict(model_type=model_type, instruments=instruments)
    if model["num_stems"] == 1:
        training["target_instrument"] = "vocals"
    return dict(
        audio=dict(chunk_size=4096, sample_rate=44100),
        model=model,
        training=training,
        inference=dict(batch_size=2, num_overlap=2),
    )


def assert_same_layout(ours: torch.nn.Module, reference: torch.nn.Module, ignore=lambda key: False) -> None:
    """Equal state-dict keys, in order, with equal shapes (keys for which `ignore` is true left out)."""
    layout = lambda model: [(k, tuple(v.shape)) for k, v in model.state_dict().items() if not ignore(k)]  # noqa: E731
    assert layout(ours) == layout(reference)


def assert_same_gradients(name: str, ours: torch.nn.Module, reference: torch.nn.Module, tolerance: float = 1e-4) -> None:
    """Every parameter's gradient within `tolerance` of the largest reference gradient (parameters by name)."""
    ref_grads = dict(reference.named_parameters())
    grad_scale = max(p.grad.abs().max() for p in reference.parameters() if p.grad is not None)
    for key, parameter in ours.named_parameters():
        if key not in ref_grads:  # a constant the reference keeps outside its parameters (splifft's rotary tables)
            assert parameter.grad is None, f"{name}: {key} has a gradient but no reference counterpart"
            continue
        ref_grad = ref_grads[key].grad
        if ref_grad is None:
            assert parameter.grad is None or not parameter.grad.any(), key
            continue
        difference = (parameter.grad - ref_grad).abs().max() / grad_scale
        assert difference <= tolerance, f"{name}: gradient of {key} differs by {difference:.3g} of the largest gradient"
    assert_relative_close(f"{name}: gradients (all)", torch.cat([p.grad.flatten() for p in ours.parameters() if p.grad is not None]),
                          torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None]), tolerance=tolerance)


def save_tiny_model(directory, **model_overrides) -> list:
    """A tiny random-weight model (MSST checkpoint + config) in `directory`; returns the CLI's model flags."""
    import yaml

    from bs_roformer.inference.config import model_from_config, read_config

    config = tiny_config(**model_overrides)
    torch.manual_seed(0)
    model = perturb_(model_from_config(read_config(config)))
    torch.save({"epoch": 1, "model_state_dict": model.state_dict()}, directory / "model.ckpt")
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    return ["--model", str(directory / "model.ckpt"), "--config", str(directory / "config.yaml")]


def tone(seconds: float, rate: int, channels: int, seed: int = 0):
    """(frames, channels) float32 numpy test signal: a 220 Hz sine with noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([signal * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


@contextmanager
def serve(files: dict, truncate: bool = False):
    """Serve {path: bytes} on 127.0.0.1; with truncate, close the connection halfway through a file."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if truncate else body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def two_transform_mrstft(estimate, target, window_sizes, hop_length, min_n_fft, normalized, window_fn, quarter=False):
    """The reference code's multi-resolution STFT loss, written out (quarter: MSST's Mel-Band Conformer hops)."""
    estimate, target = estimate.reshape(-1, estimate.shape[-1]), target.reshape(-1, target.shape[-1])
    total = 0.0
    for window_size in window_sizes:
        kwargs = dict(n_fft=max(window_size, min_n_fft), win_length=window_size, hop_length=max(hop_length, window_size // 4) if quarter else hop_length,
                      normalized=normalized, window=window_fn(window_size), return_complex=True)
        total = total + F.l1_loss(torch.stft(estimate, **kwargs), torch.stft(target, **kwargs))
    return total


def run_two_processes(*arguments: str, timeout: float, succeed: bool = True) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 ARGUMENTS...`, one thread each, with this checkout importable."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout)
    assert (result.returncode == 0) == succeed, f"exit code {result.returncode}: " + result.stderr[-3000:]
    return result
