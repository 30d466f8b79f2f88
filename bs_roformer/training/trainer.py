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
import pickle
import random
import zipfile
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from ..inference.checkpoint import read_state_dict
from ..inference.config import MODEL_TYPES, model_from_config, model_type_of, read_config, stem_names
from ..inference.loading import LoadedModel, load_fitting_weights
from ..atomic import FileSet, atomic_path
from ..devices import autocast
from ..inference.separator import Separator
from .dataset import dataset_from_config
from .distributed import Processes
from .evaluate import Evaluation, evaluate
from .settings import COMMAND_LOSS, TrainingSettings
from .tracks import find_tracks

VALIDATION_MEASURES = ("global_sdr", "mean_abs_error")

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
    freeze_backbone: train only the mask heads. resume: continue from out/last.ckpt (with the settings it was
        saved with: a changed batch size etc. is refused, a changed epoch count warned about).
    max_steps: stop after this many optimizer steps in total (the state is saved, so --resume continues).

    Under torchrun the trainer joins the process group when built and leaves it when closed: use it as
    `with Trainer(...) as trainer: trainer.train()` (or call close()). An error on any rank is raised on all.
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
        try:
            # every rank builds and checks the same; a failure on one is raised on all
            self.processes.together(lambda: self._build(config, data, out, valid, pretrained, freeze_backbone, resume, max_steps, progress, overrides))
            # DDP broadcasts rank 0's weights: built after the checks, so that every rank gets there
            self.trained = DistributedDataParallel(self.model) if self.processes.distributed else self.model
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exception) -> None:
        self.close()

    def close(self) -> None:
        """Leave the process group (nothing to do in a single process)."""
        self.__dict__.pop("trained", None)  # a DDP wrapper holds the process group, which must go (Processes.stop)
        self.processes.stop()

    def _build(self, config, data, out, valid, pretrained, freeze_backbone, resume, max_steps, progress, overrides) -> None:
        self.config = read_config(config)
        self.settings = TrainingSettings.from_config(self.config, self.device.type, **overrides)
        self.out = Path(out)
        self.max_steps = max_steps
        self.progress = progress and self.processes.is_main
        if not resume and (self.out / "last.ckpt").exists():
            raise FileExistsError(f"{self.out} already holds a training run: pass --resume to continue it, or another --out")
        torch.manual_seed(self.settings.seed)
        self._build_model()
        self._build_data(Path(data), valid)  # before the weights are read: bad data is the commoner error
        self._load_weights(pretrained, freeze_backbone)
        self._build_optimisation()
        self.step = 0
        self.best_sdr = -math.inf
        self.history: List[Dict[str, Any]] = []
        self.epoch_losses: List[float] = []  # of the epoch under way, kept across --resume
        if resume:
            self._load_state(self.out / "last.ckpt")
        else:
            self._on_main(self._start_run_dir)

    def _build_model(self) -> None:
        self.model_type = model_type_of(self.config)
        defaults = {field.name: field.default for field in fields(MODEL_TYPES[self.model_type].Config)}
        # runs saved before COMMAND_LOSS trained on the model class's own loss (their model_config names none)
        self.loss_of_older_runs = {"loss": defaults["loss"]} if "loss" in defaults else {}
        if "loss" in defaults and "loss" not in self.config["model"]:  # written to the run's config.yaml with the rest
            self.config["model"] = {**self.config["model"], "loss": COMMAND_LOSS}
        self.model = model_from_config(self.config, self.model_type).to(self.device)
        # the stems the loss compares with: the outputs, or fewer (frame-transformer: the vocals; the rest is the instrumental)
        self.stems = list(getattr(self.model, "target_stems", None) or stem_names(self.config, self.model.num_stems))
        self.instruments = [str(name) for name in self.config["training"].get("instruments") or self.stems]
        missing = [stem for stem in self.stems if stem not in self.instruments]
        if missing:
            raise ValueError(
                f"the model has {self.model.num_stems} stem(s) but training.instruments lists {self.instruments}: set "
                "model.num_stems to their number, or num_stems: 1 and training.target_instrument to the one to learn"
            )
        # the dataset yields every instrument; the model learns these
        self.target_indices = [self.instruments.index(stem) for stem in self.stems]

    def _load_weights(self, pretrained: Optional[PathLike], freeze_backbone: bool) -> None:
        if pretrained is not None:
            left_out = load_pretrained(self.model, pretrained)
            self.log(f"loaded {pretrained}" + (f"; newly initialised: {', '.join(left_out)}" if left_out else ""))
        if freeze_backbone:
            self.model.freeze_backbone()

    def _build_data(self, data: Path, valid: Optional[PathLike]) -> None:
        self.valid_root = Path(valid) if valid else next((data / name for name in ("valid", "test") if (data / name).is_dir()), None)
        self.dataset = dataset_from_config(
            self.config, data / "train", seed=self.settings.seed,
            length=self.settings.steps_per_epoch * self.batches_per_step * self.processes.world_size,
            mix_across_tracks=self.settings.remix_stems,
        )
        if self.valid_root is not None:  # checked now rather than after the first epoch
            find_tracks(self.valid_root, self.stems, mixture_of=self.instruments)

    def _build_optimisation(self) -> None:
        settings = self.settings
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if settings.optimizer.lower() == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_class(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        self.step_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=settings.reduce_factor, patience=settings.patience
        ) if settings.scheduler == "plateau" else None
        self.ema = AveragedModel(
            self.model, multi_avg_fn=ema_update(settings.ema_decay, settings.ema_warmup), use_buffers=True
        ) if settings.ema_decay > 0 else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=settings.precision == "fp16")

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
            # a file that fails to read on one rank must not leave the others waiting in the gradient all-reduce
            mixture, stems = (tensor.to(self.device) for tensor in self.processes.together(lambda: next(batches)))
            target = stems[:, self.target_indices]
            target = target[:, 0] if len(self.stems) == 1 else target
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
        scores = self.validate()
        row: Dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "train_loss": float(np.mean(losses)) if losses else None}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        improved = False
        if scores is not None:
            row["valid_loss"] = scores.pop("loss")
            row.update({f"sdr_{stem}": value for stem, value in scores.items()})
            if self.plateau is not None:
                self.plateau.step(scores["mean"])
            improved = scores["mean"] > self.best_sdr
            self.best_sdr = max(self.best_sdr, scores["mean"])
        self.history.append(row)
        self.log(" ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in row.items()))
        if improved:
            self._on_main(lambda: self._save_weights(self.out / "best.ckpt"))
        self._on_main(self._write_log)
        self._save_state()

    def _finish(self) -> None:
        if self.processes.distributed:
            digests = self.processes.gather(weights_digest(self.model))
            self.history[-1]["weights_digest_per_rank"] = digests
            self._on_main(self._write_log)
            if len(set(digests)) != 1:  # on every rank alike
                raise RuntimeError(f"the training processes ended with different weights: {digests}")
        self._on_main(lambda: self._save_weights(self.out / "final.ckpt"))

    # --- validation ------------------------------------------------------------------------------------

    def separator(self) -> Separator:
        """A Separator of the weights being trained (their EMA when kept), with the config's inference settings."""
        model = self.ema.module if self.ema is not None else self.model
        outputs = list(getattr(model, "stem_names", None) or self.stems)  # frame-transformer: more than it learns
        loaded = LoadedModel(model=model, model_type=self.model_type, config=self.config, stems=outputs, source="training")
        return Separator(loaded, device=str(self.device))

    def validate(self) -> Optional[Dict[str, float]]:
        """Global SDR per stem, their mean, and the mean absolute error ("loss") of the full chunked separation
        of every validation track, scored by `evaluate` (tracks at another rate are resampled for the model).

        Under torchrun every rank scores its share of the tracks and the shares are gathered, so no rank
        waits for a whole validation (and every rank must call this)."""
        if self.valid_root is None:
            return None
        part = (self.processes.rank, self.processes.world_size)
        try:
            share = self.processes.together(lambda: evaluate(
                self.separator(), self.valid_root, stems=self.stems, measures=VALIDATION_MEASURES, progress=self.progress, part=part))
        finally:
            self.model.train()
        overall = Evaluation.combined(self.processes.gather(share)).overall
        scores = {stem: overall[stem]["global_sdr"] for stem in self.stems}
        scores["mean"] = overall["mean"]["global_sdr"]
        scores["loss"] = overall["mean"]["mean_abs_error"]
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

    def _on_main(self, action) -> None:
        """Run `action` (a write to the run folder) on rank 0; an error there is raised on every rank."""
        self.processes.together(lambda: action() if self.processes.is_main else None)

    def _start_run_dir(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        config = dict(self.config, training={**self.config["training"], **self.settings.as_dict(), "model_type": self.model_type})
        (self.out / "config.yaml").write_text(yaml.safe_dump(_plain(config), sort_keys=False), encoding="utf-8")

    def _save_state(self) -> None:
        self._on_main(self._write_state)

    def _write_state(self) -> None:
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
            "rng": _rng_states(self.device),
            "settings": self.settings.as_dict(),
            "world_size": self.processes.world_size,
            "model_config": _plain(self.config["model"]),
        }
        _atomic_save(state, self.out / "last.ckpt")

    def _load_state(self, path: Path) -> None:
        state = read_training_state(path, self.device)
        run = str(self.out)
        self.settings.check_resume(state.get("settings", {}), run)
        saved_world = state.get("world_size", self.processes.world_size)
        if saved_world != self.processes.world_size:
            raise ValueError(
                f"cannot resume {run} with {self.processes.world_size} training process(es): it was saved with {saved_world}, "
                "and each process draws its own share of the data; resume with the same --nproc_per_node"
            )
        saved_model, model = {**self.loss_of_older_runs, **state.get("model_config", {})}, _plain(self.config["model"])
        changed = sorted(key for key in {*saved_model, *model} if saved_model.get(key) != model.get(key))
        if "model_config" in state and changed:
            changes = ", ".join(f"model.{key} {model.get(key)!r} (saved: {saved_model.get(key)!r})" for key in changed)
            raise ValueError(f"cannot resume {run} with another model: the config changes {changes}; resume with the "
                             f"saved values (as in {self.out / 'config.yaml'}), or start a new run (--checkpoint to start "
                             "from its weights)")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step_schedule.load_state_dict(state["step_schedule"])
            if self.plateau is not None and state["plateau"] is not None:
                self.plateau.load_state_dict(state["plateau"])
            if self.ema is not None and state["ema"] is not None:
                self.ema.load_state_dict(state["ema"])
            if state["scaler"]:  # empty when saved without fp16: a run may switch precision
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.best_sdr, self.history = state["step"], state["best_sdr"], state["history"]
            self.epoch_losses = state["epoch_losses"]
            _restore_rng_states(state["rng"], self.device)
        except (KeyError, RuntimeError, ValueError) as error:  # the file is ours: a mismatch here means it is not
            raise ValueError(f"{path} does not hold a training state of this run ({type(error).__name__}: {error}); "
                             "resume from another copy, or start again without --resume") from None
        self.log(f"resumed {path} at step {self.step}")

    def _save_weights(self, path: Path) -> None:
        model = self.ema.module if self.ema is not None else self.model
        _atomic_save({key: value.detach().cpu() for key, value in model.state_dict().items()}, path)

    def _write_log(self) -> None:
        columns = list(dict.fromkeys(key for row in self.history for key in row if key != "weights_digest_per_rank"))
        with FileSet([self.out / "log.json", self.out / "log.csv"]) as files:
            files.temporary[self.out / "log.json"].write_text(json.dumps(self.history, indent=1), encoding="utf-8")
            with open(files.temporary[self.out / "log.csv"], "w", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.history)

    def log(self, message: str) -> None:
        if self.processes.is_main:
            tqdm.write(message)


def read_training_state(path: Path, device: torch.device) -> Dict[str, Any]:
    """The training state a run saved in last.ckpt; ValueError saying what to do when it is missing or damaged."""
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist (start without --resume)")
    damaged = f"{path} is damaged (truncated or overwritten?): resume from a copy of it, or start again without --resume"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise ValueError(f"{damaged}; it is not a PyTorch checkpoint")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise ValueError(f"{damaged} ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    if not isinstance(state, dict) or "optimizer" not in state:
        raise ValueError(f"{path} holds weights, not a training state: resume needs the last.ckpt a run saved "
                         "(to start from weights, use --checkpoint without --resume)")
    return state


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


def _rng_states(device: torch.device) -> Dict[str, Any]:
    """The global random states, in types `torch.load(weights_only=True)` reads back."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():  # dropout on the GPU draws from the devices' generators
        states["cuda"] = torch.cuda.get_rng_state_all()
        if device.type == "cuda":
            states["cuda_device"] = device.index if device.index is not None else torch.cuda.current_device()
    return states


def _restore_rng_states(states: Dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"].cpu())
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        cuda = [state.cpu() for state in states["cuda"]]
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
        saved_device = states.get("cuda_device")
        if device.type == "cuda" and saved_device is not None and saved_device < len(cuda):
            # the ranks draw alike (same seed, same shapes), each on its own GPU: rank 0 saved its GPU's stream,
            # which every rank continues on its own
            torch.cuda.set_rng_state(cuda[saved_device], device)


def _atomic_save(obj: Any, path: Path) -> None:
    """Write next to the target and rename, so an interrupted save never leaves a truncated checkpoint."""
    with atomic_path(path) as partial:
        torch.save(obj, partial)


def _plain(value: Any) -> Any:
    """Tuples as lists, so the saved config is plain YAML."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
