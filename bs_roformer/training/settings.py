"""Training settings: read from an MSST config's `training:` section, overridable from the command line."""

import difflib
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, List

from ..devices import PRECISIONS

SCHEDULERS = ("plateau", "cosine", "constant")
OPTIMIZERS = ("adam", "adamw")
MSST_NAMES = {"num_steps": "steps_per_epoch", "num_epochs": "epochs"}
# `training:` keys read elsewhere: by the model and dataset builders, and MSST's use_amp by from_config
READ_ELSEWHERE = ("instruments", "target_instrument", "model_type", "use_amp")
# keys of MSST's training section that this trainer does not apply, with what to use instead where there is one
MSST_NOT_APPLIED = {
    "q": None, "coarse_loss_clip": None, "other_fix": None, "read_metadata_procs": None, "ema_momentum": "ema_decay",
    "augmentation": "the augmentations section", "augmentation_type": "the augmentations section",
    "augmentation_mix": "the augmentations section", "use_mp3_compress": None,
}
# a nearer suggestion than spelling gives for names other tools use
SYNONYMS = {"learning_rate": "lr", "epochs_count": "epochs", "accumulation_steps": "gradient_accumulation_steps"}
# the training loss of band-split models whose config does not name `model.loss` (the model classes default to
# their reference's L1 waveform + multi-resolution STFT loss): minus the SDR in dB, the measure the models are
# judged by. bench/train_quality.py, after 300 steps (EMA weights): 0.5 dB more than the reference loss on
# ensemble music at a learning rate of 2e-3 (0.36 at 5e-4), 3.6 dB more on independent synthetic stems, and its
# steps take about 0.6 of the time (no STFTs).
COMMAND_LOSS = "sdr"
# settings a resumed run may change: the others are part of its saved state (optimizer and schedules,
# data order), so a change would be silently overruled by the checkpoint or break the exact continuation
CHANGEABLE_ON_RESUME = ("epochs", "grad_clip", "precision")
INERT_ON_RESUME = ("checkpoint_every", "num_workers")  # change nothing the run computes


@dataclass(frozen=True)
class TrainingSettings:
    """How to train; the config key of each setting is its name unless noted.

    steps_per_epoch: optimizer steps per epoch (MSST `num_steps`); epochs: MSST `num_epochs`.
    gradient_accumulation_steps: batches summed into one optimizer step.
    scheduler: "plateau" (MSST: lr x reduce_factor after `patience` epochs without a better validation SDR),
        "cosine" (to 0 over the run) or "constant"; all after `warmup_steps` of linear warm-up.
    ema_decay: keep an exponential moving average of the weights (0 = off); validation and best.ckpt use it.
        0.99 by default: bench/train_quality.py measured its weights (with the warm-up) 0.44 dB better than the
        raw ones after 300 steps at a learning rate of 2e-3, and never more than 0.06 dB worse in any run.
    ema_warmup: the average's decay grows as min(ema_decay, (1 + n) / (10 + n)) over its first updates n, so
        the average forgets the random initialisation quickly (TensorFlow's ExponentialMovingAverage rule). On
        by default: bench/train_quality.py measured EMA 0.99 weights 0.2-0.3 dB better with it after 300
        steps (and as good as the raw weights), and it stops mattering after the first ~1000 updates.
    remix_stems: each training chunk's stems come from independently drawn tracks and offsets (random
        remixing, MSST's default dataset_type 1); false, the default, takes all stems of a chunk from one
        track and offset (the real mix): bench/train_quality.py measured it 0.35 dB better on ensemble music
        whose voices share harmony and rhythm after 300 steps, and as good on independent synthetic stems.
    precision: "fp32", "bf16" (autocast, CPU or CUDA) or "fp16" (CUDA, with gradient scaling); MSST's
        `use_amp: true` means fp16 on CUDA and fp32 elsewhere.
    checkpoint_every: also save the training state every this many steps (0 = only at epoch ends).
    """

    batch_size: int = 2
    gradient_accumulation_steps: int = 1
    lr: float = 5e-5
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    steps_per_epoch: int = 1000
    epochs: int = 100
    scheduler: str = "plateau"
    patience: int = 2
    reduce_factor: float = 0.95
    warmup_steps: int = 0
    ema_decay: float = 0.99
    ema_warmup: bool = True
    remix_stems: bool = False
    precision: str = "fp32"
    checkpoint_every: int = 0
    num_workers: int = 0
    seed: int = 0

    @classmethod
    def from_config(cls, config: Dict[str, Any], device_type: str = "cpu", **overrides: Any) -> "TrainingSettings":
        """Settings from `config["training"]` (MSST names accepted), then the non-None `overrides`."""
        section = dict(config.get("training") or {})
        _warn_unknown_keys(section)
        values = {MSST_NAMES.get(key, key): value for key, value in section.items()}
        if values.pop("use_amp", False) and device_type == "cuda":
            values.setdefault("precision", "fp16")
        known = {field.name for field in fields(cls)}
        settings = cls(**{key: value for key, value in values.items() if key in known and value is not None})
        settings = replace(settings, **{key: value for key, value in overrides.items() if value is not None})
        settings.check(device_type)
        return settings

    def check(self, device_type: str) -> None:
        for name, choices in (("precision", PRECISIONS), ("scheduler", SCHEDULERS), ("optimizer", OPTIMIZERS)):
            if str(getattr(self, name)).lower() not in choices:
                raise ValueError(f"training.{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        for name in ("batch_size", "gradient_accumulation_steps", "steps_per_epoch", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"training.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.precision == "fp16" and device_type != "cuda":
            raise ValueError("fp16 training needs a CUDA device; on the CPU use --precision bf16 or fp32")

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def as_dict(self) -> Dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def check_resume(self, saved: Dict[str, Any], run: str) -> None:
        """Refuse settings that differ from those a run was saved with, unless a resumed run may change them
        (those are warned about): ValueError naming each setting and both values."""
        changed = {
            name: (saved[name], value) for name, value in self.as_dict().items()
            if name in saved and saved[name] != value and name not in INERT_ON_RESUME
        }
        refused = [f"{name} {now!r} (saved: {then!r})" for name, (then, now) in changed.items() if name not in CHANGEABLE_ON_RESUME]
        if refused:
            raise ValueError(
                f"cannot resume {run} with other settings than it was saved with: {', '.join(refused)}. Resume with "
                "the saved values (its config.yaml holds them), or start a new run with --out"
            )
        for name, (then, now) in changed.items():
            warnings.warn(f"resuming {run} with {name} {now!r} (it was saved with {then!r})", stacklevel=3)


def _warn_unknown_keys(section: Dict[str, Any]) -> None:
    """One warning naming the keys nothing reads, each with the nearest known key; one for MSST's unapplied keys."""
    known = [field.name for field in fields(TrainingSettings)] + [*MSST_NAMES, *READ_ELSEWHERE]
    unknown: List[str] = []
    for key in section:
        key = str(key)
        if key in known or key in MSST_NOT_APPLIED:
            continue
        nearest = SYNONYMS.get(key) or next(iter(difflib.get_close_matches(key, known, n=1, cutoff=0.5)), None)
        unknown.append(f"training.{key}" + (f" (did you mean {nearest}?)" if nearest else ""))
    if unknown:
        warnings.warn(f"unknown training settings, ignored: {', '.join(unknown)}", stacklevel=4)
    not_applied = [f"training.{key}" + (f" (use {MSST_NOT_APPLIED[key]})" if MSST_NOT_APPLIED[key] else "")
                   for key in section if key in MSST_NOT_APPLIED]
    if not_applied:
        warnings.warn(f"MSST training settings bs_roformer's trainer does not apply: {', '.join(not_applied)}", stacklevel=4)
