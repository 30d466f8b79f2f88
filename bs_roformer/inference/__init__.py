"""Separating real songs: loading checkpoints, chunked streaming inference, lossless mode, audio files."""

from ..devices import pick_device
from .audio_io import read_audio
from .config import read_config
from .errors import AudioFileError, SeparationError
from .loading import LoadedModel, load_model
from .onnx_export import export_onnx
from .overlap_add import ChunkLayout, overlap_add
from .registry import DEFAULT_MODEL, REGISTRY
from .separator import Separator

__all__ = [
    "AudioFileError",
    "ChunkLayout",
    "DEFAULT_MODEL",
    "LoadedModel",
    "REGISTRY",
    "SeparationError",
    "Separator",
    "export_onnx",
    "load_model",
    "overlap_add",
    "pick_device",
    "read_audio",
    "read_config",
]
