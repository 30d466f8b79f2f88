"""The training loop: random chunks in, checkpoints and an SDR table per epoch out; resumable bit for bit.

    run = Trainer(config, data="musdb18hq", out="runs/vocals")
    run.train()

RUN_DIR holds config.yaml (the config trained with), last.ckpt (the whole training state, for --resume),
best.ckpt and final.ckpt (weights only, loadable with `load_model(path, config=RUN_DIR/config.yaml)`),
log.csv and log.json (one row per epoch).
"""

import csv
import hashlib
import json
import math
import random
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from ..inference.checkpoint import read_state_dict
from ..inference.config import model_from_config, model_type_of, read_config, stem_names
from ..inference.loading import LoadedModel, load_fitting_weights
from ..inference.separator import Separator, autocast
from ..metrics import global_sdr
from .dataset import FullTrackDataset, dataset_from_config
from .distributed import Processes
from .settings import TrainingSettings
from .tracks import find_tracks

PathLike = Union[str, Path]


def load_pretrained(model: torch.nn.Module, path: PathLike) -> List[str]:
    """Load every weight of a checkpoint file that fits `model`; returns the modules left as initialised."""
    try:
        return load_fitting_weights(model, read_state_dict(path))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the bytes of every parameter and buffer: equal digests mean identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Trainer:
    """Train the model a config describes on a MUSDB18-HQ-layout folder (DATA/train; validation on DATA/valid,
    else DATA/test, or `valid`).

    pretrained: start from these weights (any that fit: new stems get new mask heads).
    freeze_backbone: train only the mask heads. resume: continue from out/last.ckpt.
    max_steps: stop after this many optimizer steps in total (the state is saved, so --resume continues).
    """

    def __init__(
        self,
        config: Union[PathLike, Dict[str, Any]],
        data: PathLike,
        out: PathLike,
        *,
        valid: Optional[PathLike] = None,
        pretrained: Optional[PathLike] = None,
        freeze_backbone: bool = False,
        resume: bool = False,
        device: Optional[str] = None,
        max_steps: Optional[int] = None,
        progress: bool = True,
        **overrides: Any,
    ):
        self.processes = Processes.start()
        self.device = self.processes.device(device)
        self.processes.join(self.device)
        self.config = read_config(config)
        self.settings = TrainingSettings.from_config(self.config, self.device.type, **overrides)
        self.out = Path(out)
        self.max_steps = max_steps
        self.progress = progress and self.processes.is_main
        data = Path(data)
        self.valid_root = Path(valid) if valid else next((data / name for name in ("valid", "test") if (data / name).is_dir()), None)

        torch.manual_seed(self.settings.seed)
        self.model_type = model_type_of(self.config)
        self.model = model_from_config(self.config, self.model_type).to(self.device)
        self.stems = stem_names(self.config, self.model.num_stems)
        self.instruments = [str(name) for name in self.config["training"].get("instruments") or self.stems]
        missing = [stem for stem in self.stems if stem not in self.instruments]
        if missing:
            raise ValueError(
                f"the model has {self.model.num_stems} stem(s) but training.instruments lists {self.instruments}: set "
                "model.num_stems to their number, or num_stems: 1 and training.target_instrument to the one to learn"
            )
        # the dataset yields every instrument; the model learns these
        self.target_indices = [self.instruments.index(stem) for stem in self.stems]
        if pretrained is not None:
            left_out = load_pretrained(self.model, pretrained)
            self.log(f"loaded {pretrained}" + (f"; newly initialised: {', '.join(left_out)}" if left_out else ""))
        if freeze_backbone:
            self.model.freeze_backbone()

        self.dataset = dataset_from_config(
            self.config, data / "train", seed=self.settings.seed,
            length=self.settings.steps_per_epoch * self.batches_per_step * self.processes.world_size,
            mix_across_tracks=self.settings.remix_stems,
        )
        self.trained = DistributedDataParallel(self.model) if self.processes.distributed else self.model
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if self.settings.optimizer.lower() == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_class(parameters, lr=self.settings.lr, weight_decay=self.settings.weight_decay)
        self.step_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=self.settings.reduce_factor, patience=self.settings.patience
        ) if self.settings.scheduler == "plateau" else None
        self.ema = AveragedModel(
            self.model, multi_avg_fn=ema_update(self.settings.ema_decay, self.settings.ema_warmup), use_buffers=True
        ) if self.settings.ema_decay > 0 else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.settings.precision == "fp16")

        self.step = 0
        self.best_sdr = -math.inf
        self.history: List[Dict[str, Any]] = []
        self.epoch_losses: List[float] = []  # of the epoch under way, kept across --resume
        if resume:
            self._load_state(self.out / "last.ckpt")
        elif self.processes.is_main:
            self._start_run_dir()

    @property
    def batches_per_step(self) -> int:
        return self.settings.batch_size * self.settings.gradient_accumulation_steps

    # --- the loop --------------------------------------------------------------------------------------

    def train(self) -> Dict[str, Any]:
        """Train to the end (or to max_steps); returns the last log row."""
        settings = self.settings
        while self.step < settings.total_steps and not self._stopped():
            epoch, step_in_epoch = divmod(self.step, settings.steps_per_epoch)
            self._train_epoch(epoch, step_in_epoch)
            if self.step % settings.steps_per_epoch == 0:
                self._end_epoch(epoch, self.epoch_losses)
                self.epoch_losses = []
            else:
                self._save_state()  # stopped mid-epoch by max_steps
        if self.step >= settings.total_steps:
            self._finish()
        return self.history[-1] if self.history else {}

    def _train_epoch(self, epoch: int, first_step: int) -> None:
        self.model.train()
        self.dataset.set_epoch(epoch)
        batches = iter(self._loader(epoch, first_step))
        losses = self.epoch_losses
        steps = range(first_step, self.settings.steps_per_epoch)
        bar = tqdm(steps, desc=f"epoch {epoch + 1}/{self.settings.epochs}", disable=not self.progress, leave=False)
        for _ in bar:
            losses.append(self._optimizer_step(batches))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            self.step += 1
            every = self.settings.checkpoint_every
            if self._stopped():
                break
            if every and self.step % every == 0 and self.step % self.settings.steps_per_epoch:
                self._save_state()

    def _optimizer_step(self, batches) -> float:
        accumulation = self.settings.gradient_accumulation_steps
        total = 0.0
        for micro_step in range(accumulation):
            mixture, stems = (tensor.to(self.device) for tensor in next(batches))
            target = stems[:, self.target_indices]
            target = target[:, 0] if self.model.num_stems == 1 else target
            # DDP averages gradients only on the last micro-batch of an accumulated step
            sync = self.trained.no_sync() if self.processes.distributed and micro_step < accumulation - 1 else nullcontext()
            with sync:
                with autocast(self.device, self.settings.precision):
                    loss = self.trained(mixture, target=target) / accumulation
                self.scaler.scale(loss).backward()
            total += loss.item()
        self.scaler.unscale_(self.optimizer)
        if self.settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        # after warm-up, a plateau schedule owns the learning rate
        if self.settings.scheduler == "cosine" or self.step < self.settings.warmup_steps:
            self.step_schedule.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return total

    def _end_epoch(self, epoch: int, losses: List[float]) -> None:
        scores = self.validate() if self.processes.is_main else None
        scores = self.processes.from_main(scores)
        row: Dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "train_loss": float(np.mean(losses)) if losses else None}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        if scores is not None:
            row["valid_loss"] = scores.pop("loss")
            row.update({f"sdr_{stem}": value for stem, value in scores.items()})
            if self.plateau is not None:
                self.plateau.step(scores["mean"])
            if scores["mean"] > self.best_sdr:
                self.best_sdr = scores["mean"]
                if self.processes.is_main:
                    self._save_weights(self.out / "best.ckpt")
        self.history.append(row)
        if self.processes.is_main:
            self.log(" ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in row.items()))
            self._write_log()
        self._save_state()

    def _finish(self) -> None:
        if self.processes.distributed:
            digests = self.processes.gather(weights_digest(self.model))
            if self.processes.is_main:
                self.history[-1]["weights_digest_per_rank"] = digests
                self._write_log()
                if len(set(digests)) != 1:
                    raise RuntimeError(f"the training processes ended with different weights: {digests}")
        if self.processes.is_main:
            self._save_weights(self.out / "final.ckpt")
        self.processes.barrier()

    # --- validation ------------------------------------------------------------------------------------

    def validate(self) -> Optional[Dict[str, float]]:
        """Global SDR per stem, their mean, and the mean absolute error ("loss") of the full chunked separation
        of every validation track."""
        if self.valid_root is None:
            return None
        model = self.ema.module if self.ema is not None else self.model
        loaded = LoadedModel(model=model, model_type=self.model_type, config=self.config, stems=self.stems, source="training")
        separator = Separator(loaded, device=str(self.device))
        tracks = FullTrackDataset(find_tracks(self.valid_root, self.instruments), self.instruments, channels=model.audio_channels)
        per_stem: Dict[str, List[float]] = {stem: [] for stem in self.stems}
        errors = []
        for _, mixture, references in tracks:
            estimates = separator.separate_tensor(mixture)
            for stem, index in zip(self.stems, self.target_indices):
                per_stem[stem].append(float(global_sdr(references[index], estimates[stem])))
                errors.append(float((references[index] - estimates[stem]).abs().mean()))
        self.model.train()
        scores = {stem: float(np.mean(values)) for stem, values in per_stem.items()}
        scores["mean"] = float(np.mean(list(scores.values())))
        scores["loss"] = float(np.mean(errors))
        return scores

    # --- state -----------------------------------------------------------------------------------------

    def _loader(self, epoch: int, first_step: int) -> torch.utils.data.DataLoader:
        """This rank's batches of the epoch from `first_step` on: items depend only on their index."""
        per_step = self.batches_per_step * self.processes.world_size
        indices = range(first_step * per_step + self.processes.rank, self.settings.steps_per_epoch * per_step, self.processes.world_size)
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.settings.batch_size,
            sampler=list(indices),
            num_workers=self.settings.num_workers,
            # a generator of its own keeps worker seeding from drawing on the global RNG (dropout's)
            generator=torch.Generator().manual_seed(self.settings.seed + epoch),
            drop_last=True,
        )

    def _lr_factor(self, step: int) -> float:
        warmup = self.settings.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        if self.settings.scheduler == "cosine":
            progress = (step - warmup) / max(1, self.settings.total_steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    def _stopped(self) -> bool:
        return self.max_steps is not None and self.step >= self.max_steps

    def _start_run_dir(self) -> None:
        if (self.out / "last.ckpt").exists():
            raise FileExistsError(f"{self.out} already holds a training run: pass --resume to continue it, or another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        config = dict(self.config, training={**self.config["training"], **self.settings.as_dict(), "model_type": self.model_type})
        (self.out / "config.yaml").write_text(yaml.safe_dump(_plain(config), sort_keys=False), encoding="utf-8")

    def _save_state(self) -> None:
        if not self.processes.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step_schedule": self.step_schedule.state_dict(),
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best_sdr": self.best_sdr,
            "history": self.history,
            "epoch_losses": self.epoch_losses,
            "rng": _rng_states(),
            "settings": self.settings.as_dict(),
        }
        _atomic_save(state, self.out / "last.ckpt")

    def _load_state(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist (start without --resume)")
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_schedule.load_state_dict(state["step_schedule"])
        if self.plateau is not None and state["plateau"] is not None:
            self.plateau.load_state_dict(state["plateau"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.best_sdr, self.history = state["step"], state["best_sdr"], state["history"]
        self.epoch_losses = state["epoch_losses"]
        _restore_rng_states(state["rng"])
        self.log(f"resumed {path} at step {self.step}")

    def _save_weights(self, path: Path) -> None:
        model = self.ema.module if self.ema is not None else self.model
        _atomic_save({key: value.detach().cpu() for key, value in model.state_dict().items()}, path)

    def _write_log(self) -> None:
        (self.out / "log.json").write_text(json.dumps(self.history, indent=1), encoding="utf-8")
        columns = list(dict.fromkeys(key for row in self.history for key in row if key != "weights_digest_per_rank"))
        with open(self.out / "log.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.history)

    def log(self, message: str) -> None:
        if self.processes.is_main:
            tqdm.write(message)


def ema_update(decay: float, warmup: bool):
    """AveragedModel's update of one group of same-dtype tensors: average <- decay * average + (1 - decay) *
    current; with warm-up the decay of the n-th update is min(decay, (1 + n) / (10 + n)). Integer buffers
    (band indices, counters) are not averaged but copied."""

    @torch.no_grad()
    def update(averaged: List[torch.Tensor], current: List[torch.Tensor], num_averaged) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        step_decay = min(decay, (1 + int(num_averaged)) / (10 + int(num_averaged))) if warmup else decay
        torch._foreach_lerp_(averaged, current, 1 - step_decay)

    return update


def _rng_states() -> Dict[str, Any]:
    """The global random states, in types `torch.load(weights_only=True)` reads back."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
        "python": [version, list(internal), gauss_next],
    }


def _restore_rng_states(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"].cpu())
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _atomic_save(obj: Any, path: Path) -> None:
    """Write next to the target and rename, so an interrupted save never leaves a truncated checkpoint."""
    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    partial.replace(path)


def _plain(value: Any) -> Any:
    """Tuples as lists, so the saved config is plain YAML."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
