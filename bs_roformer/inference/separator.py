"""`Separator`: separate tensors or files with a loaded model, chunked and streamed.

    separator = Separator("model_bs_roformer_ep_17_sdr_9.6568")
    stems = separator.separate_tensor(mix, sample_rate=44100)      # {"drums": (channels, t), ...}
    paths = separator.separate_file("song.flac", "separated")      # {"drums": Path(...), ...}

Everything is a stream of blocks (see streams.py): the input is read, resampled to the model's rate,
separated chunk by chunk, resampled back and written block by block, so memory does not grow with the
length of the track (files) or grows only by the output itself (tensors).
"""

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
from tqdm import tqdm

from ..devices import PRECISIONS, autocast, pick_device
from . import audio_io
from .backends import model_runner
from .crops import CropScheme
from .errors import SeparationError
from .lossless import complement_name, distribute_residual, receiving_stems
from .loading import LoadedModel, load_model
from .overlap_add import ChunkLayout, overlap_add
from .streams import BlockSource, aligned, resampled, resampled_length, split

@dataclass(frozen=True)
class Normalization:
    """MSST's inference.normalize: the mix scaled to zero mean and unit deviation (of its mono sum)."""

    mean: float
    std: float

    @classmethod
    def of(cls, blocks: Iterator[torch.Tensor]) -> Optional["Normalization"]:
        count, total, squares = 0, 0.0, 0.0
        for block in blocks:
            mono = block.double().mean(dim=0)
            count, total, squares = count + mono.numel(), total + mono.sum().item(), squares + mono.pow(2).sum().item()
        mean = total / max(count, 1)
        variance = squares / max(count, 1) - mean**2
        # silence (or a constant) cannot be normalised; leave it as it is
        return cls(mean, math.sqrt(variance)) if variance > 1e-12 else None


class Separator:
    """Separate audio with a model: chunked overlap-add, batching, TTA, lossless mode, any length.

    model: a `LoadedModel`, or anything `load_model` takes (registry name, checkpoint path; None = default),
        with `config`, `model_type` and `cache` passed on to it.
    chunk_size, num_overlap, batch_size, normalize: override the config's inference settings.
    tta: also separate the channel-swapped and polarity-inverted mix, and average (3x the compute).
    precision: "fp32" (default), "bf16" or "fp16" autocast for the model.
    device: "cuda", "mps", "cpu", ...; default CUDA > MPS > CPU.
    backend: "torch" (default) or "onnxruntime": the network between STFT and iSTFT runs in ONNX Runtime, from
        the `onnx` file (see `export_onnx`) or one exported on first use into the cache's onnx/ folder.
    compile: run the network through torch.compile (pays off for long inputs; see README, Speed and memory).
    A list of models gives an `Ensemble` (keywords `ensemble=` rule and `weights=`; see ensemble.py).
    """

    def __new__(cls, model=None, *args, **kwargs):
        # a list of models is an ensemble (ensemble.py): several models, their stems combined per name
        if isinstance(model, (list, tuple)):
            from .ensemble import Ensemble

            return Ensemble(model, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        model: Union[LoadedModel, str, Path, None] = None,
        *,
        config=None,
        model_type: Optional[str] = None,
        device: Optional[str] = None,
        chunk_size: Optional[int] = None,
        num_overlap: Optional[int] = None,
        batch_size: Optional[int] = None,
        normalize: Optional[bool] = None,
        tta: bool = False,
        precision: str = "fp32",
        progress: bool = False,
        cache=None,
        backend: str = "torch",
        compile: bool = False,
        onnx: Union[str, Path, None] = None,
    ):
        if not isinstance(model, LoadedModel):
            model = load_model(model, config=config, model_type=model_type, cache=cache, progress=progress)
        self.loaded = model
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = pick_device(device)
        self.model = self.loaded.model.to(self.device).eval()
        self.precision = precision
        self._run = model_runner(self.loaded, self.device, backend=backend, compile=compile, onnx=onnx,
                                 precision=precision, cache=cache, progress=progress)
        self.tta = tta
        self.progress = progress
        self.normalize = self.loaded.normalize if normalize is None else normalize
        self.batch_size = batch_size or self.loaded.batch_size
        chunk_size = chunk_size or self.loaded.chunk_size
        hop = getattr(self.model, "stft_hop_length", 1)
        if not getattr(self.model, "match_input_audio_length", True):
            # without it the model returns hop * (t // hop) samples: keep chunks a whole number of hops
            chunk_size = max(hop, chunk_size // hop * hop)
        minimum = getattr(self.model, "stft_n_fft", 1)
        if chunk_size < minimum:
            raise ValueError(f"chunk size {chunk_size} is shorter than the model's STFT window ({minimum} samples)")
        self.layout = ChunkLayout.from_overlap(chunk_size, num_overlap or self.loaded.num_overlap)
        # models that mask magnitude crops (frame-transformer) are separated in crops of frames instead
        self.crops = CropScheme.of(self.model, tta)

    @property
    def stems(self) -> List[str]:
        return list(self.loaded.stems)

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    # --- public API -----------------------------------------------------------------------------------

    def output_names(self, lossless: bool = False, extract_instrumental: bool = False) -> List[str]:
        """The stems `separate_*` returns, in order.

        A single-stem model's lossless complement (mix - stem) is the instrumental too: with both asked for,
        it is returned once, named `instrumental`.
        """
        names = self.stems
        if lossless and len(names) == 1:
            complement = "instrumental" if extract_instrumental else complement_name(names[0], self.loaded.instruments)
            names = names + [complement]
        if extract_instrumental and "instrumental" not in names:
            names = names + ["instrumental"]
        return names

    @property
    def instrumental_of(self) -> str:
        """The stem `instrumental` is the mix minus: vocals, or the first stem of a model without vocals."""
        return "vocals" if "vocals" in self.stems else self.stems[0]

    def separate_tensor(
        self,
        mix: torch.Tensor,
        sample_rate: Optional[int] = None,
        *,
        lossless: bool = False,
        extract_instrumental: bool = False,
    ) -> Dict[str, torch.Tensor]:
        """(channels, t) or (t,) mix -> {stem: (channels, t)} at the mix's sample rate (default: the model's)."""
        if not torch.is_tensor(mix) or not mix.is_floating_point():
            raise TypeError(f"mix must be a floating-point tensor, got {getattr(mix, 'dtype', type(mix))}")
        squeeze = mix.ndim == 1
        mix = mix[None] if squeeze else mix
        if mix.ndim != 2:
            raise ValueError(f"mix must have shape (channels, samples) or (samples,), got {tuple(mix.shape)}")
        audio_io.check_channels(mix.shape[0], "the mix")
        if mix.shape[-1] == 0:
            raise ValueError("the mix has no samples")
        found = audio_io.NonFinite()
        found.update(mix)
        if found.count:
            raise SeparationError(found.message("the mix", sample_rate or self.sample_rate))
        mix = mix.detach().float().cpu()
        names, blocks = self.separate_stream(
            lambda: split(mix), sample_rate or self.sample_rate, mix.shape[-1], lossless, extract_instrumental
        )
        out = torch.empty(len(names), *mix.shape)
        position = 0
        for block in blocks:
            out[..., position : position + block.shape[-1]] = block
            position += block.shape[-1]
        return {name: stem[0] if squeeze else stem for name, stem in zip(names, out)}

    def separate_file(
        self,
        path: Union[str, Path],
        output_dir: Union[str, Path],
        *,
        template: str = audio_io.DEFAULT_TEMPLATE,
        file_format: str = "wav",
        subtype: Optional[str] = None,
        lossless: bool = False,
        extract_instrumental: bool = False,
        overwrite: bool = False,
        track: Optional[str] = None,
        nan_to_zero: bool = False,
    ) -> Dict[str, Path]:
        """Separate one audio file into one file per stem, streamed from disk to disk.

        Outputs go to output_dir / template ({track}: `track`, default the file's name without extension;
        {stem}; {ext}); all are written under temporary names and published together once every stem is
        complete. Existing outputs are kept (FileExistsError) unless `overwrite`. A file with NaN or infinite
        samples is refused (AudioFileError) unless `nan_to_zero`; a truncated file is separated as far as it
        can be read, with a warning.
        """
        reader = audio_io.AudioReader(path)
        names = self.output_names(lossless, extract_instrumental)
        track = Path(path).stem if track is None else track
        targets = audio_io.output_paths(Path(output_dir), template, track, names, file_format)
        if not overwrite:
            existing = [str(target) for target in targets.values() if target.exists()]
            if existing:
                raise FileExistsError(f"{path}: outputs exist already ({', '.join(existing)}); use --overwrite")
        reader.scan(nan_to_zero)
        _, blocks = self.separate_stream(reader.blocks, reader.sample_rate, reader.frames, lossless, extract_instrumental)
        with audio_io.StemWriters(targets, reader.sample_rate, reader.channels, file_format, subtype) as writers:
            for block in blocks:
                writers.write(block)
        return targets

    # --- the pipeline -----------------------------------------------------------------------------------

    def separate_stream(
        self, mix: BlockSource, rate: int, length: int, lossless: bool = False, extract_instrumental: bool = False
    ) -> Tuple[List[str], Iterator[torch.Tensor]]:
        """Output names, and the (names, channels, n) blocks of a mix stream of `length` samples at `rate`."""
        stats = Normalization.of(mix()) if self.normalize else None
        passes = 2 if lossless and len(self.stems) > 1 and self.crops is None else 1
        progress = self._progress(length, rate, passes)
        stems = self._separated(mix(), rate, length, stats, progress, again=mix)

        if lossless and self.crops is not None:  # complementary masks: the last stem is the mix minus the first
            stems = (torch.cat([s[:-1], (m - s[0])[None]]) for m, s in aligned(mix(), stems))
        elif lossless and len(self.stems) == 1:
            stems = (torch.cat([s, (m - s[0])[None]]) for m, s in aligned(mix(), stems))
        elif lossless:
            for_residual, for_output = itertools.tee(stems)
            residual, residual_copy = itertools.tee(m - s.sum(dim=0) for m, s in aligned(mix(), for_residual))
            # the residual is near zero-mean: scale it like the mix, without the mix's offset
            residual_stats = None if stats is None else Normalization(0.0, stats.std)
            residual_stems = self._separated(residual, rate, length, residual_stats, progress)
            stems = distribute_residual(aligned(for_output, residual_stems, residual_copy), receiving_stems(self.stems))

        names = self.output_names(lossless, extract_instrumental)
        if len(names) > len(self.output_names(lossless)):  # instrumental = mix - vocals (or the first stem)
            target = self.stems.index(self.instrumental_of)
            stems = (torch.cat([s, (m - s[target])[None]]) for m, s in aligned(mix(), stems))
        return names, _closing(stems, progress)

    def _separated(
        self, blocks, rate: int, length: int, stats: Optional[Normalization], progress, again: Optional[BlockSource] = None
    ) -> Iterator[torch.Tensor]:
        """The model's stems (n, channels, t) of a (channels, t) stream, at the stream's rate and channels.
        again: the same stream from its start, for schemes that read it twice."""
        model_rate = self.sample_rate
        blocks, channels = self._for_model(blocks, rate, length, stats)
        if self.crops is not None:
            rescan = lambda: self._for_model(again(), rate, length, stats)[0]  # noqa: E731
            model_length = resampled_length(length, rate, model_rate)
            stems = self.crops.separate(blocks, rescan, model_length, self._crop_masks, self.batch_size, progress.update)
        else:
            stems = overlap_add(blocks, self._separate_chunks, self.layout, self.batch_size, on_chunk=progress.update)
        count = len(self.stems)
        flat = (stem.reshape(-1, stem.shape[-1]) for stem in stems)
        for block in resampled(flat, model_rate, rate, length):
            block = block.reshape(count, -1, block.shape[-1])
            if channels == 1 and block.shape[1] == 2:
                block = block.mean(dim=1, keepdim=True)  # dual mono back to mono
            yield block if stats is None else block * stats.std + stats.mean

    def _for_model(self, blocks, rate: int, length: int, stats: Optional[Normalization]):
        """The stream as the model takes it (normalised, its channels, its rate), and the stream's channels."""
        if stats is not None:
            blocks = ((block - stats.mean) / stats.std for block in blocks)
        blocks, channels = _channels_for_model(blocks, self.loaded.audio_channels)
        return resampled(blocks, rate, self.sample_rate, resampled_length(length, rate, self.sample_rate)), channels

    def _crop_masks(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(b, channels, bins, frames) -> (b, stems, channels, bins, frames) masks; a mono model masks each channel."""
        batch, channels = magnitude.shape[:2]
        mono = self.loaded.audio_channels == 1 and channels == 2
        magnitude = magnitude.to(self.device).flatten(0, 1)[:, None] if mono else magnitude.to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            masks = self.model.crop_masks(magnitude)
        return masks.unflatten(0, (batch, 2)).squeeze(3).transpose(1, 2) if mono else masks

    def _separate_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """(b, channels, chunk) -> (b, stems, channels, chunk), with TTA if asked."""
        chunks = chunks.to(self.device)
        estimates = self._run_model(chunks)
        if self.tta:
            variants = [(lambda x: -x, lambda y: -y)]
            if chunks.shape[1] == 2:
                variants.append((lambda x: x.flip(1), lambda y: y.flip(2)))
            for forward, back in variants:
                estimates = estimates + back(self._run_model(forward(chunks)))
            estimates = estimates / (1 + len(variants))
        return estimates.float().cpu()

    def _run_model(self, chunks: torch.Tensor) -> torch.Tensor:
        batch, channels, length = chunks.shape
        model_channels = self.loaded.audio_channels
        if model_channels == 1 and channels == 2:  # a mono model separates each channel on its own
            chunks = chunks.reshape(batch * 2, 1, length)
        with torch.inference_mode(), autocast(self.device, self.precision):
            estimates = self._run(chunks)
        if estimates.ndim == 3:  # one stem: (b, channels, t)
            estimates = estimates[:, None]
        if model_channels == 1 and channels == 2:
            estimates = estimates.reshape(batch, 2, -1, length).transpose(1, 2)
        return estimates

    def _progress(self, length: int, rate: int, passes: int):
        model_length = resampled_length(length, rate, self.sample_rate)
        chunks = (self.crops.num_crops(model_length) if self.crops else self.layout.num_chunks(model_length)) * passes
        return tqdm(total=chunks, unit="chunk", desc="separating", leave=False, disable=not self.progress)


def _channels_for_model(blocks, model_channels: int) -> Tuple[Iterator[torch.Tensor], int]:
    """Present a stream to the model: mono into a stereo model as dual mono. Returns the input channel count
    lazily through the first block."""
    blocks = iter(blocks)
    first = next(blocks, None)
    if first is None:
        return iter(()), model_channels
    channels = first.shape[0]
    chained = itertools.chain([first], blocks)
    if channels == 1 and model_channels == 2:
        chained = (block.expand(2, -1) for block in chained)
    return chained, channels


def _closing(blocks: Iterator[torch.Tensor], progress) -> Iterator[torch.Tensor]:
    try:
        yield from blocks
    finally:
        progress.close()
