"""Typed model configs: one frozen dataclass per model family, every setting with its default and meaning.

In the spirit of nanoGPT's `GPTConfig`. The settings every band-split model has live once, in
`BandSplitConfig`; the axial backbone's in `AxialConfig`, with its stacks in `RoformerConfig` (transformers)
or `ConformerConfig`; the bands' in `ContiguousBandsConfig` or `MelBandsConfig`. A family's config combines
them (`BSRoformerConfig(ContiguousBandsConfig, RoformerConfig)`) and adds only what differs.
Read all settings of a model in one place with `help(BSRoformerConfig)` (the docstring lists them).

    config = BSRoformerConfig(dim=384, depth=8, stereo=True, num_stems=4)   # checked here, once
    model = BSRoformer.from_config(config)          # = BSRoformer(config) = BSRoformer(dim=384, depth=8, ...)
    model.config                                    # the config the model was built from
    BSRoformerConfig.from_msst(yaml_config["model"])  # an MSST `model:` section; .to_msst() writes one back

Checks, all when the config is built (so a bad YAML value fails once, before any audio is read):
- names: an unknown keyword fails naming the nearest setting ("unknown setting 'num_stem' (did you mean
  num_stems?)"), a missing required one with its meaning;
  MSST keys that do not change the weights (`sage_attention`, ...) are dropped by `from_msst` with a
  warning (the list is `bs_roformer.compat.IGNORED_MSST_MODEL_KEYS`);
- types: every value against its annotation with beartype (`sample_rate="fast"` -> "sample_rate must be
  int, got 'fast' (str)"); ints are accepted where a float is wanted (PEP 484's numeric tower), lists
  where a sequence is (stored as tuples, so configs are hashable and compare equal after a YAML trip);
- values: `validate()` (positive sizes, ...); a family overrides it and calls super().validate().

`ModelConfig` (checks, MSST sections, `replace`) and `ConfiguredModel` (an nn.Module built from one) are
the parts any model family uses, band-split or not; `BandSplitConfig` and `RoformerConfig` hold the fields.

Adding a model family (the pattern the band-split families follow):

    @model_config
    class MyModelConfig(ContiguousBandsConfig):           # bands + shared settings; add RoformerConfig
        model_type: ClassVar[str] = "my_model"            # for an axial-transformer body; MSST's model_type
        depth: int = setting(6, "blocks of the backbone")  # a new setting: default and one-line meaning
        zero_dc: bool = False                             # another default for a shared setting: the
                                                          # meaning is inherited

        def validate(self) -> None:
            super().validate()
            check_positive_integers(depth=self.depth)

    class MyModel(BandSplitModel):
        Config = MyModelConfig
        def build_bands(self, config, first_bin, end_bin): ...  # -> BandLayout over the modelled bins
        def build_backbone(self, config): ...             # -> (b, frames, bands, dim) module

A model of another kind subclasses `ConfiguredModel` with `Config = MyConfig` (a `@model_config` subclass
of `ModelConfig`) and builds its layers from `self.config` after `super().__init__(*args, **settings)`.

Then register the model type in `bs_roformer.inference.config.MODEL_TYPES`, and, if its checkpoints
should load without a config, a recogniser in `bs_roformer.compat.RECOGNISERS`. The model's keywords are
the config's (`MyModel(dim=64, depth=2)`), and `inspect.signature(MyModel)` shows them.
"""

import difflib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar, Dict, Optional, Tuple, TypeVar, Union

import torch
from beartype import BeartypeConf
from beartype.door import is_bearable
from torch import nn

from ..compat import MSST_MODEL_KEYWORDS, drop_ignored_msst_keys
from ..modules.band_schemas import BS_ROFORMER_BINS
from ..modules.mask_heads import mask_estimator_kind
from ..modules.stft import frequency_range_bins

MEANING = "meaning"
# ints where a float is wanted: YAML writes 0 for 0.0
TYPE_CHECKS = BeartypeConf(is_pep484_tower=True)

ConfigT = TypeVar("ConfigT", bound="ModelConfig")

# distances between estimate and target that a training loss can add up (`loss="t+tf"`, ...)
LOSS_TERMS = {
    "t": "L1 of the waveform",
    "tf": "L1 of the real and imaginary parts of the model's own STFT",
    "mrstft": "L1 of multi-resolution STFTs (weighted by multi_stft_resolution_loss_weight)",
    "sdr": "minus the global SDR in dB (the MDX metric) of each stem over the batch, averaged over stems",
}


def setting(default: Any = MISSING, meaning: str = "") -> Any:
    """A config field: its default (none: required) and a one-line meaning."""
    return field(default=default, metadata={MEANING: meaning})


def model_config(cls: type) -> type:
    """Make `cls` a frozen, keyword-only config dataclass whose docstring lists every setting."""
    cls = dataclass(frozen=True, kw_only=True)(cls)
    meanings: Dict[str, str] = {}
    for base in reversed(cls.__mro__):
        for item in getattr(base, "__dataclass_fields__", {}).values():
            if item.metadata.get(MEANING):
                meanings[item.name] = item.metadata[MEANING]
    unexplained = [item.name for item in fields(cls) if item.name not in meanings]
    if unexplained:
        raise TypeError(f"{cls.__name__}: give {', '.join(unexplained)} a meaning with setting(default, meaning)")
    cls.meanings = meanings
    cls.hints = typing.get_type_hints(cls)
    cls.__doc__ = (cls.__doc__ or cls.__name__).rstrip() + "\n\nSettings:\n" + "\n".join(
        f"    {item.name}: {hint_name(cls.hints[item.name])}"
        f"{'' if item.default is MISSING else ' = ' + _default_text(item.default)}\n        {meanings[item.name]}"
        for item in fields(cls)
    )
    return cls


def hint_name(hint: Any) -> str:
    """A type hint as error messages show it: int, Optional[int], Union[str, Sequence[int]]."""
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def _default_text(value: Any) -> str:
    return getattr(value, "__name__", None) or repr(value)


class ModelConfig:
    """Base of every model config: checks at construction, MSST sections both ways, `replace`.

    A family's config is a subclass decorated with `model_config`, its fields made with `setting`.
    """

    model_type: ClassVar[str] = ""  # the family's name: MSST's training.model_type, compat's tables
    meanings: ClassVar[Dict[str, str]] = {}  # setting -> one-line meaning (filled by model_config)
    hints: ClassVar[Dict[str, Any]] = {}  # setting -> type annotation (filled by model_config)

    def __post_init__(self) -> None:
        for item in fields(self):
            value, hint = getattr(self, item.name), self.hints[item.name]
            if not is_bearable(value, hint, conf=TYPE_CHECKS):
                raise TypeError(f"{item.name} must be {hint_name(hint)}, got {value!r} ({type(value).__name__})")
            if isinstance(value, list):  # YAML sequences: stored as tuples, hashable and comparable
                object.__setattr__(self, item.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Value checks beyond the types; a family adds its own and calls super().validate()."""

    @classmethod
    def from_keywords(cls: typing.Type[ConfigT], owner: str, /, *args: Any, **settings: Any) -> ConfigT:
        """The config from a model constructor's arguments: a config, or an optional positional dim + keywords."""
        if args and isinstance(args[0], ModelConfig):
            if not isinstance(args[0], cls):
                raise TypeError(f"{owner} takes a {cls.__name__}, got a {type(args[0]).__name__}")
            if len(args) > 1 or settings:
                raise TypeError(f"{owner}() takes a config or settings, not both: change a config with config.replace(...)")
            return args[0]
        if len(args) > 1 or (args and "dim" in settings):
            raise TypeError(f"{owner}() takes dim as its only positional argument, the other settings by keyword")
        if args:
            settings["dim"] = args[0]
        problem = cls._name_problem(settings)
        if problem:
            raise TypeError(f"{owner}(): {problem}")
        return cls(**settings)

    @classmethod
    def from_msst(cls: typing.Type[ConfigT], section: Mapping[str, Any]) -> ConfigT:
        """The config of a Music-Source-Separation-Training YAML `model:` section (a ValueError naming any bad key)."""
        settings = drop_ignored_msst_keys(dict(section))
        owner = f"the model section of a {cls.model_type or cls.__name__} config"
        problem = cls._name_problem(settings)
        if problem:
            raise ValueError(f"{owner}: {problem}")
        try:
            return cls(**settings)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{owner}: {error}") from None

    @classmethod
    def _name_problem(cls, settings: Mapping[str, Any]) -> Optional[str]:
        """What is wrong with the names of `settings`: an unknown one, or a missing required one."""
        unknown = [name for name in settings if name not in cls.__dataclass_fields__]
        if unknown:
            return f"unknown setting {unknown_setting(cls, unknown[0])}"
        missing = [item.name for item in fields(cls) if item.default is MISSING and item.name not in settings]
        if missing:
            return f"missing setting {missing[0]} ({cls.meanings[missing[0]]})"
        return None

    def to_msst(self) -> Dict[str, Any]:
        """An MSST `model:` section (YAML-safe: lists, numbers, strings) that `from_msst` turns back into this config.

        Every setting is written except those the family's MSST model file lacks (see
        compat.MSST_MODEL_KEYWORDS), which are written only when they differ from the default.
        """
        msst_keys = MSST_MODEL_KEYWORDS.get(self.model_type)
        section: Dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            at_default = item.default is not MISSING and value == item.default
            if msst_keys is not None and item.name not in msst_keys and at_default:
                continue
            if callable(value):
                if at_default:
                    continue  # MSST's default window too; a function has no YAML form
                raise ValueError(f"{item.name}={value!r} is a function and cannot be written to a YAML config")
            section[item.name] = list(value) if isinstance(value, tuple) else value
        return section

    def replace(self: ConfigT, **changes: Any) -> ConfigT:
        """A copy with some settings changed (checked like a new config)."""
        unknown = [name for name in changes if name not in self.__dataclass_fields__]
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown setting {unknown_setting(type(self), unknown[0])}")
        return replace(self, **changes)


@model_config
class BandSplitConfig(ModelConfig):
    """The settings every band-split model has (STFT, bands' channels, mask estimation, losses)."""

    dim: int = setting(meaning="feature size of every band's embedding")
    stereo: bool = setting(False, "two audio channels instead of one (folded into the frequency axis)")
    num_stems: int = setting(1, "stems separated at once, one mask estimator each")
    sample_rate: int = setting(44100, "audio sample rate in Hz; band schemas and mel bands are laid out for it")
    stft_n_fft: int = setting(2048, "STFT size: n_fft // 2 + 1 frequency bins")
    stft_hop_length: int = setting(512, "STFT hop in samples")
    stft_win_length: Optional[int] = setting(2048, "STFT window length in samples (None: stft_n_fft)")
    stft_normalized: bool = setting(False, "orthonormal STFT (torch.stft normalized=True)")
    stft_window_fn: Optional[Callable[..., torch.Tensor]] = setting(None, "window_length -> window (None: Hann)")
    freq_range: Optional[tuple[int, int]] = setting(
        None, "(first, end) STFT bins to model, -1 = open end; the other bins come out silent (None: all)"
    )
    zero_dc: bool = setting(True, "zero the DC bin of the masked spectrum before the iSTFT")
    match_input_audio_length: bool = setting(True, "the iSTFT returns the input length, not hop * (t // hop)")
    mask_estimator_depth: int = setting(
        2, "depth of each band's mask MLP (its hidden layers: the family's rule in bs_roformer.compat)"
    )
    mlp_expansion_factor: int = setting(4, "hidden width of the mask MLPs = dim * mlp_expansion_factor")
    mask_estimator: Union[str, Mapping[str, Any]] = setting(
        "baseline",
        "mask head: a kind, or {kind: ..., options} as in splifft's configs: baseline (per-band MLPs), "
        "hyperace_residual_v1 / _v2, axial_refiner_large_v2 (bs_roformer.modules.mask_heads)",
    )
    use_torch_checkpoint: bool = setting(False, "recompute activations in the backward pass (less memory, same results)")
    loss: str = setting("t+mrstft", "training loss: terms joined by '+' (t, tf, mrstft: L1 of waveform, STFT, multi-res. STFT; sdr: -SDR in dB)")
    sum_stem_losses: bool = setting(False, "the loss sums the per-stem losses (multi-task learning) instead of averaging")
    multi_stft_resolution_loss_weight: float = setting(1.0, "weight of the multi-resolution STFT loss term")
    multi_stft_resolutions_window_sizes: Sequence[int] = setting(
        (4096, 2048, 1024, 512, 256), "window sizes of the multi-resolution STFT loss"
    )
    multi_stft_hop_size: int = setting(147, "hop of the multi-resolution STFT loss")
    multi_stft_normalized: bool = setting(False, "orthonormal STFTs in the multi-resolution loss")
    multi_stft_window_fn: Callable[..., torch.Tensor] = setting(torch.hann_window, "window of the multi-resolution loss")

    def validate(self) -> None:
        super().validate()
        check_positive_integers(dim=self.dim, num_stems=self.num_stems)
        frequency_range_bins(self.stft_n_fft, self.freq_range)  # a clear error for a range outside the bins
        mask_estimator_kind(self.mask_estimator)  # a clear error for an unknown kind or option
        if any(term not in LOSS_TERMS for term in self.loss.split("+")):
            raise ValueError(f"loss must join terms from {', '.join(LOSS_TERMS)} with '+', e.g. 't+tf'; got {self.loss!r}")

    @property
    def audio_channels(self) -> int:
        return 2 if self.stereo else 1


@model_config
class AxialConfig(BandSplitConfig):
    """The settings of the axial backbone around the RoFormers' transformers and the Conformers' blocks."""

    depth: int = setting(meaning="axial layers, each a time and a frequency stack (and optionally a linear one)")
    dim_head: int = setting(64, "features per attention head")
    heads: int = setting(8, "attention heads")
    attn_dropout: float = setting(0.0, "dropout on the attention weights")
    ff_dropout: float = setting(0.0, "dropout in the feed-forward layers")
    flash_attn: bool = setting(True, "attention through F.scaled_dot_product_attention's kernels, else explicit")
    linear_flash_attn: Optional[bool] = setting(None, "the same for the linear layers (None: as flash_attn)")
    value_residual: bool = setting(False, "attentions after the first layer mix in its values (adds weights)")
    skip_connection: bool = setting(False, "add the outputs of all previous layers before each time stack")
    use_pope: bool = setting(False, "polar position embeddings (PoPE, MSST's BS PolarFormer) instead of rotary ones")
    use_shared_bias: bool = setting(
        False, "one qkv and one output bias added by every attention (the original BS-RoFormer SW export)"
    )
    # COMPAT: MSST: every config carries dim_freqs_in; the bin count follows from stft_n_fft here
    dim_freqs_in: int = setting(1025, "accepted for MSST configs and ignored (the bins follow from stft_n_fft)")

    def validate(self) -> None:
        super().validate()
        check_positive_integers(depth=self.depth, heads=self.heads, dim_head=self.dim_head)

    def axis_depths(self) -> Tuple[int, int, int]:
        """Layers of the (time, frequency, linear) stacks in each axial layer."""
        raise NotImplementedError


@model_config
class RoformerConfig(AxialConfig):
    """The RoFormers' transformer stacks (BS-RoFormer, Mel-Band RoFormer)."""

    time_transformer_depth: int = setting(2, "transformer layers across time in each axial layer")
    freq_transformer_depth: int = setting(2, "transformer layers across bands in each axial layer")
    linear_transformer_depth: int = setting(0, "XCiT linear-attention layers before each axial layer's others (0: none)")

    def axis_depths(self) -> Tuple[int, int, int]:
        return self.time_transformer_depth, self.freq_transformer_depth, self.linear_transformer_depth


@model_config
class ConformerConfig(AxialConfig):
    """The Conformers' stacks (MSST's bs_conformer.py, mel_band_conformer.py)."""

    time_conformer_depth: int = setting(2, "Conformer blocks across time in each axial layer")
    freq_conformer_depth: int = setting(2, "Conformer blocks across bands in each axial layer")
    linear_conformer_depth: int = setting(0, "linear-attention transformer layers before each axial layer's others (0: none)")
    ff_mult: int = setting(4, "feed-forward width / dim")
    conv_expansion_factor: int = setting(2, "convolution module width / dim")
    conv_kernel_size: int = setting(31, "depthwise convolution kernel (odd)")

    def axis_depths(self) -> Tuple[int, int, int]:
        return self.time_conformer_depth, self.freq_conformer_depth, self.linear_conformer_depth


@model_config
class ContiguousBandsConfig(BandSplitConfig):
    """Non-overlapping bands (BS-RoFormer, BS-Conformer, BSRNN)."""

    freqs_per_bands: Union[str, Sequence[int]] = setting(
        BS_ROFORMER_BINS,
        "STFT bins per band, in order, adding up to the modelled bins; or a band schema name (bs_roformer.band_schema)",
    )


@model_config
class MelBandsConfig(AxialConfig):
    """Overlapping mel bands, and the defaults of MSST's Mel model files (Mel-Band RoFormer, Mel-Band Conformer)."""

    num_bands: int = setting(60, "overlapping mel bands (librosa's mel filter bank at sample_rate)")
    attn_dropout: float = 0.1
    ff_dropout: float = 0.1
    mask_estimator_depth: int = 1
    match_input_audio_length: bool = False


class _SettingsSignature:
    """`inspect.signature(Model)`: the settings of Model.Config; an instance's stays its forward's."""

    def __get__(self, instance: Any, owner: type) -> inspect.Signature:
        if instance is not None:
            raise AttributeError("__signature__")
        return inspect.signature(owner.Config)


class ConfiguredModel(nn.Module):
    """A model built from its family's config: `Model(**settings)` (dim also positionally), `Model(config)`
    or `Model.from_config(config)`; the config is kept as `model.config`, and `inspect.signature(Model)`
    shows the settings. A subclass sets `Config` and builds its layers from `self.config` after
    `super().__init__(*args, **settings)`."""

    Config: ClassVar[typing.Type[ModelConfig]] = ModelConfig
    __signature__ = _SettingsSignature()

    def __init__(self, *args: Any, **settings: Any):
        super().__init__()
        self.config = self.Config.from_keywords(type(self).__name__, *args, **settings)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "ConfiguredModel":
        """The model `config` describes (untrained)."""
        return cls(config)


def check_positive_integers(**values: Any) -> None:
    """A clear error for the first keyword that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def unknown_setting(cls: type, name: str) -> str:
    """'name' and the nearest setting of `cls`, for an error message."""
    nearest = difflib.get_close_matches(name, list(cls.__dataclass_fields__), n=1, cutoff=0.6)
    hint = f" (did you mean {nearest[0]}?)" if nearest else f"; the settings are listed by help({cls.__name__})"
    return f"{name!r}{hint}"
