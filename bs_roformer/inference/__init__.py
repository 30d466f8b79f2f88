"""Separating real songs: loading checkpoints, chunked streaming inference, lossless mode, audio files."""

from .audio_io import AudioFileError, read_audio
from .config import read_config
from .loading import LoadedModel, load_model
from .onnx_export import export_onnx
from .overlap_add import ChunkLayout, overlap_add
from .registry import DEFAULT_MODEL, REGISTRY
from .separator import Separator, pick_device

__all__ = [
    "AudioFileError",
    "ChunkLayout",
    "DEFAULT_MODEL",
    "LoadedModel",
    "REGISTRY",
    "Separator",
    "export_onnx",
    "load_model",
    "overlap_add",
    "pick_device",
    "read_audio",
    "read_config",
]
