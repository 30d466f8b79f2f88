"""ONNX export of a band-split model's network, and an ONNX Runtime session that runs it.

What is exported is `BandSplitModel.masks`, the network between STFT and iSTFT:

    spec (batch, (f s), frames, 2) float32 -> masks (batch, stems, (f s), frames, 2) float32

with dynamic batch and frames. The STFT, the masking and the iSTFT stay in torch (as in every published
exporter: ONNX's STFT op has no inverse), so the exported file is used with the model it came from:
`Separator(model, backend="onnxruntime")`. The file records a fingerprint of the weights and architecture
it was exported from, and a session refuses a file exported from another model.

torch 2.13's exporter is `torch.onnx.export(dynamo=True)` (with onnxscript); the older TorchScript exporter
has no symbol for `aten::rms_norm`. Needs `pip install bs-roformer[onnx]`.
"""

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .loading import LoadedModel

DEFAULT_OPSET = 18
FINGERPRINT_KEY = "bs_roformer.fingerprint"
INPUT_NAME, OUTPUT_NAME = "spec", "masks"
ONNX_PACKAGES = "pip install 'bs-roformer[onnx]' (onnx, onnxscript, onnxruntime)"


class _Masks(nn.Module):
    """The exported graph: the model's masks of a spectrum."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.model.masks(spec)


def _network(model: Union[LoadedModel, nn.Module]) -> nn.Module:
    network = model.model if isinstance(model, LoadedModel) else model
    if not callable(getattr(network, "masks", None)) or not hasattr(network, "stft"):
        raise TypeError(
            f"ONNX export takes a band-split model (BSRoformer, MelBandRoformer, BSRNN) whose masks are computed "
            f"between STFT and iSTFT; {type(network).__name__} is not one"
        )
    return network


def fingerprint(model: Union[LoadedModel, nn.Module]) -> str:
    """sha256 of a model's class, settings that shape the graph, and weights: which model an .onnx file is of."""
    network = _network(model)
    digest = hashlib.sha256(type(network).__qualname__.encode())
    settings = dict(stems=network.num_stems, channels=network.audio_channels, n_fft=network.stft.n_fft,
                    bins=(network.stft.first_bin, network.stft.end_bin), bands=network.bands.bins_per_band)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in network.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_onnx(
    model: Union[LoadedModel, nn.Module], path: Union[str, Path], *, opset: int = DEFAULT_OPSET
) -> Path:
    """Write the model's spectrum -> masks network to `path` as ONNX: (b, (f s), frames, 2) -> (b, n, (f s), frames, 2).

    Batch and frames are dynamic. The file is written under a temporary name and renamed when complete.
    """
    if opset < 17:
        raise ValueError(f"opset must be 17 or newer, got {opset}")
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as error:
        raise ImportError(f"ONNX export needs onnx and onnxscript: {ONNX_PACKAGES}") from error
    network = _network(model)
    path = Path(path)
    parameter = next(network.parameters())
    # a few frames of noise: any length exports the same graph, the frames axis stays symbolic
    audio = torch.randn(2, network.audio_channels, network.stft.n_fft + 7 * network.stft.hop_length)
    was_training = network.training
    network.eval()
    try:
        # the exporter reports its stages with print(): keep them off stdout, which may carry a program's output
        with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
            spec = network.stft(audio.to(parameter.device)).float()
            frames = torch.export.Dim("frames", min=2)
            program = torch.onnx.export(
                _Masks(network).eval(),
                (spec,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"spec": {0: torch.export.Dim("batch"), 2: frames}},
                # onnxscript's optimizer rewrites `x + eps` as `x` for RMSNorm's eps of 1e-24 / dim (its
                # add-zero rule matches constants within 1e-8), turning silent input into NaN
                optimize=False,
                verbose=False,
            )
    finally:
        network.train(was_training)
    program.model.metadata_props[FINGERPRINT_KEY] = fingerprint(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        program.save(partial, external_data=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class OnnxMasks:
    """An ONNX Runtime session of an exported model: spec (b, (f s), frames, 2) -> masks, as `model.masks`.

    expected_fingerprint: the model's `fingerprint`; a file exported from another model (other weights or
    architecture) is refused.
    """

    def __init__(self, path: Union[str, Path], expected_fingerprint: str, *, threads: Optional[int] = None,
                 device: Optional[torch.device] = None):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(f"the onnxruntime backend needs onnxruntime: {ONNX_PACKAGES}") from error
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file; write one with `bs-roformer export MODEL {path}`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if device is not None and device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        recorded = self.session.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)
        if recorded != expected_fingerprint:
            raise ValueError(
                f"{path} was exported from another model (other weights or architecture); "
                f"export this one with `bs-roformer export MODEL {path.name}` or bs_roformer.export_onnx"
            )
        self.path = path

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        feed = {INPUT_NAME: np.ascontiguousarray(spec.detach().float().cpu().numpy())}
        (masks,) = self.session.run([OUTPUT_NAME], feed)
        return torch.from_numpy(masks).to(spec.device)
