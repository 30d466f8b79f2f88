"""How `Separator` runs its model on a batch of chunks: eagerly (the default), compiled, or in ONNX Runtime.

Compilation and ONNX both take only the network between STFT and iSTFT (`model.masks`); the transforms and
the masking run in torch around it, exactly as in the model's own forward.
"""

import sys
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import nn

from .loading import LoadedModel
from .registry import cache_dir

BACKENDS = ("torch", "onnxruntime")

Run = Callable[[torch.Tensor], torch.Tensor]  # (b, channels, t) chunks -> the model's output


class AroundMasks:
    """The model's forward with its spectrum -> masks network replaced by `masks` (compiled or ONNX)."""

    def __init__(self, model: nn.Module, masks: Callable[[torch.Tensor], torch.Tensor]):
        self.model = model
        self.masks = masks

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        spec = self.model.stft(audio)
        return self.model.stems_from_masks(spec, self.masks(spec), audio.shape[-1])


class CompiledMasks:
    """`model.masks` through torch.compile. A batch smaller than the largest so far (a song's last) is padded
    to it: a few chunks of wasted work instead of compiling again for the new shape."""

    def __init__(self, model: nn.Module):
        self.compiled = torch.compile(model.masks)
        self.batch = 0

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        batch = spec.shape[0]
        self.batch = max(self.batch, batch)
        if batch < self.batch:
            spec = torch.cat([spec, spec.new_zeros(self.batch - batch, *spec.shape[1:])])
        return self.compiled(spec)[:batch]


def cached_onnx(loaded: LoadedModel, cache=None, progress: bool = False) -> Path:
    """The model's ONNX file in the cache (`<cache>/onnx/`), exported on first use."""
    from .onnx_export import DEFAULT_OPSET, export_onnx, fingerprint

    path = cache_dir(cache) / "onnx" / f"{fingerprint(loaded)[:20]}-opset{DEFAULT_OPSET}.onnx"
    if path.is_file():
        return path
    if progress:
        print(f"exporting {loaded.source} to ONNX once, into {path} (minutes for a large model)", file=sys.stderr)
    return export_onnx(loaded, path)


def model_runner(
    loaded: LoadedModel,
    device: torch.device,
    *,
    backend: str = "torch",
    compile: bool = False,
    onnx: Union[str, Path, None] = None,
    precision: str = "fp32",
    cache=None,
    progress: bool = False,
) -> Run:
    """The callable a Separator runs its chunks through (the model itself by default)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    model = loaded.model
    if backend == "torch":
        if onnx is not None:
            raise ValueError("an ONNX file is run by backend='onnxruntime'")
        if not compile:
            return model
        # only the network: torch.stft / istft gain nothing from inductor
        return AroundMasks(model, CompiledMasks(model)) if hasattr(model, "masks") else torch.compile(model)

    from .onnx_export import OnnxMasks, fingerprint

    if compile:
        raise ValueError("compile=True compiles the torch backend; backend='onnxruntime' runs an ONNX graph")
    if not hasattr(model, "masks"):
        raise ValueError(f"{type(model).__name__} has no ONNX export (the band-split models do): use backend='torch'")
    if precision != "fp32":
        raise ValueError(f"the onnxruntime backend runs the fp32 graph; precision {precision!r} needs backend='torch'")
    path = cached_onnx(loaded, cache, progress) if onnx is None else Path(onnx)
    return AroundMasks(model, OnnxMasks(path, fingerprint(loaded), device=device))
