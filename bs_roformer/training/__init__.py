"""Training and evaluation: multi-stem datasets, the training loop, evaluation tables."""

from .dataset import FullTrackDataset, RandomChunkDataset, dataset_from_config
from .evaluate import Evaluation, evaluate
from .settings import TrainingSettings
from .synthetic import write_synthetic_dataset
from .tracks import Track, find_tracks
from .trainer import Trainer, load_pretrained

__all__ = [
    "Evaluation",
    "FullTrackDataset",
    "RandomChunkDataset",
    "Track",
    "Trainer",
    "TrainingSettings",
    "dataset_from_config",
    "evaluate",
    "find_tracks",
    "load_pretrained",
    "write_synthetic_dataset",
]
