"""The one home of compatibility quirks: where the lineages of weights, configs and command lines differ.

Every quirk is marked `# COMPAT:` with its lineage, and both of its values are tested (tests/test_compat.py;
the lineage settings also by the parity tests against each lineage's code). The
lineages: Music-Source-Separation-Training (MSST, ZFTurbo; trained nearly every published checkpoint;
audio-separator and UVR ship copies of its model files) and lucidrains' bs-roformer 0.5.1 on PyPI
("upstream"). Our defaults are MSST's.

- mask-estimator depth: `mask_hidden_layers`, `mask_estimator_depth_for` (and back, for inference);
- settings where the lineages differ: `LINEAGE_DIFFERENCES` (the README's lineage table is
  `lineage_table()`, checked by a test), `upstream_settings`;
- MSST config keys: `IGNORED_MSST_MODEL_KEYS` (dropped with a warning), `MSST_MODEL_KEYWORDS` (what
  `to_msst` may write for MSST to read);
- checkpoint layouts: `renumber_empty_linear_slot` (upstream Mel without linear layers),
  `with_shared_biases` (the SW export), `with_lineage_conventions` (value-residual YAMLs);
- command lines: `CLI_ALIASES`, the flags of other tools that `bs-roformer` accepts (`cli_flags`);
- architecture inference: `infer_architecture(state_dict)`, which tries `RECOGNISERS` in order.

Registering a new family's checkpoints for loading without a config: write a recogniser
`(state_dict) -> Optional[Inferred]` that returns None unless the keys are its family's (check a key
only it has: it runs before or after the others), reads every setting it can from the tensor names and
shapes, and adds a note to `Inferred.notes` for every setting it had to assume (`Inferred.assume`); then
put it in `RECOGNISERS` before any recogniser that would also claim those weights (more specific first).
The recogniser may live in the family's own module (this file is model core: import a module that needs
more inside the function). A variant of a family (another mask head, attention, ...) wraps the family's
recogniser: `inferred = recognise_roformer(state_dict)`, then adds its own settings and notes.
"""

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .modules.bands import mel_band_membership

StateDict = Dict[str, torch.Tensor]

# --- mask-estimator depth ---------------------------------------------------------------------------------

# COMPAT: all lineages: the BS model file builds mask_estimator_depth - 1 hidden layers in each band's mask
# MLP, the Mel file mask_estimator_depth (lucidrains/BS-RoFormer#48); checkpoints depend on it. MSST's
# Conformer files both took the BS file's rule. BSRNN (ours) builds mask_estimator_depth, so its default 1
# is the paper's one hidden layer.
MASK_HIDDEN_LAYERS_BELOW_DEPTH = {
    "bs_roformer": 1,
    "mel_band_roformer": 0,
    "bs_conformer": 1,
    "mel_band_conformer": 1,
    "bsrnn": 0,
}


def _depth_offset(model_type: str) -> int:
    if model_type not in MASK_HIDDEN_LAYERS_BELOW_DEPTH:
        raise KeyError(f"no mask-depth rule for model type {model_type!r}: add it to compat.MASK_HIDDEN_LAYERS_BELOW_DEPTH")
    return MASK_HIDDEN_LAYERS_BELOW_DEPTH[model_type]


def mask_hidden_layers(config: Any) -> int:
    """Hidden layers of each band's mask MLP for a model config (the rule of its family, or of the family it extends)."""
    model_type = next(
        (klass.model_type for klass in type(config).__mro__ if getattr(klass, "model_type", "") in MASK_HIDDEN_LAYERS_BELOW_DEPTH),
        getattr(config, "model_type", ""),
    )
    return config.mask_estimator_depth - _depth_offset(model_type)


def mask_estimator_depth_for(model_type: str, hidden_layers: int) -> int:
    """The mask_estimator_depth setting that builds `hidden_layers` hidden layers in `model_type`'s mask MLPs."""
    return hidden_layers + _depth_offset(model_type)


# --- settings where the lineages differ -------------------------------------------------------------------


def built_in(value: Any) -> Tuple[Any, bool]:
    """An upstream behaviour that is not a keyword there."""
    return value, False


def keyword(value: Any) -> Tuple[Any, bool]:
    """An upstream keyword's default."""
    return value, True


NOT_AVAILABLE = None


@dataclass(frozen=True)
class LineageDifference:
    """A setting whose value differs between MSST (our default) and upstream bs-roformer 0.5.1."""

    keyword: str
    upstream: Mapping[str, Optional[Tuple[Any, bool]]]  # model type -> built_in / keyword value, or NOT_AVAILABLE
    meaning: str


BOTH = ("bs_roformer", "mel_band_roformer")
LINEAGE_DIFFERENCES = (
    # COMPAT: upstream 0.5.1 BS: value residual always on (new to_value_residual_mix weights); MSST: none
    LineageDifference(
        "value_residual", {"bs_roformer": built_in(True), "mel_band_roformer": keyword(False)},
        "every attention after the first layer mixes in the first layer's values (adds `to_value_residual_mix` weights)",
    ),
    # COMPAT: MSST (since 2025-09-23) zeroes the DC bin before the iSTFT; upstream 0.5.1 does not
    LineageDifference("zero_dc", dict.fromkeys(BOTH, built_in(False)), "zero the DC bin of the masked spectrum before the iSTFT"),
    # COMPAT: MSST's BS restores the input length; its Mel and upstream 0.5.1 return hop * (t // hop)
    LineageDifference(
        "match_input_audio_length", dict.fromkeys(BOTH, keyword(False)),
        "iSTFT returns the input length instead of `hop * (t // hop)`",
    ),
    # COMPAT: upstream 0.5.1 Mel has one linear-attention layer per axial layer by default; its BS has none
    LineageDifference(
        "linear_transformer_depth", {"bs_roformer": NOT_AVAILABLE, "mel_band_roformer": keyword(1)},
        "XCiT linear-attention layers before each axial block",
    ),
    LineageDifference("mlp_expansion_factor", dict.fromkeys(BOTH, built_in(4)), "mask-estimator hidden width = `dim * factor`"),
    LineageDifference(
        "skip_connection", dict.fromkeys(BOTH, NOT_AVAILABLE),
        "add the outputs of all previous layers before each time transformer",
    ),
    LineageDifference(
        "use_torch_checkpoint", dict.fromkeys(BOTH, NOT_AVAILABLE), "activation checkpointing (less memory, same results)"
    ),
)


def _config_classes() -> Dict[str, type]:
    from .models import BSRoformerConfig, MelBandRoformerConfig

    return {"bs_roformer": BSRoformerConfig, "mel_band_roformer": MelBandRoformerConfig}


def msst_default(model_type: str, name: str) -> Any:
    """Our (= MSST's) default of a setting."""
    return _config_classes()[model_type].__dataclass_fields__[name].default


def upstream_settings(model_type: str) -> Dict[str, Any]:
    """The settings under which our model computes what upstream bs-roformer 0.5.1's does (at its defaults)."""
    settings = {}
    for difference in LINEAGE_DIFFERENCES:
        upstream = difference.upstream[model_type]
        if upstream is not NOT_AVAILABLE and upstream[0] != msst_default(model_type, difference.keyword):
            settings[difference.keyword] = upstream[0]
    return settings


def with_lineage_conventions(config: Dict[str, Any], state_dict: StateDict, notes: List[str]) -> Dict[str, Any]:
    """A YAML config with the settings its checkpoint's lineage implies where the YAML leaves them out."""
    # COMPAT: value-residual weights (`to_value_residual_mix`) come only from upstream bs-roformer 0.5.x,
    # whose constructor has no keyword for it (always on there), so its YAMLs (e.g. unwa's BS_Inst_EXP_VRL)
    # do not say it: its settings (value residual on, no DC zeroing, length not restored); a YAML's own win
    if not any(".to_value_residual_mix." in key for key in state_dict):
        return config
    model = dict(config["model"])
    added = {key: value for key, value in upstream_settings("bs_roformer").items() if key not in model}
    if not added:
        return config
    notes.append(
        "value-residual weights: settings of upstream bs-roformer 0.5.x added to the config ("
        + ", ".join(f"{key}={value}" for key, value in added.items()) + ")"
    )
    return {**config, "model": {**model, **added}}


def lineage_table() -> str:
    """The README's table of the settings where the lineages differ, from `LINEAGE_DIFFERENCES` and our defaults."""

    names = {"bs_roformer": "BS", "mel_band_roformer": "Mel"}

    def per_model(texts: Dict[str, str], after_name: str, separator: str) -> str:
        """One text if both models agree, else each model's: 'BS `True`, Mel `False`'."""
        if len(set(texts.values())) == 1:
            return next(iter(texts.values()))
        return separator.join(f"{names[model]}{after_name}{text}" for model, text in texts.items())

    def upstream_text(value: Optional[Tuple[Any, bool]]) -> str:
        if value is NOT_AVAILABLE:
            return "not available"
        return f"`{value[0]}`" + ("" if value[1] else " (not a keyword)")

    rows = [
        "| keyword | default (MSST) | upstream bs-roformer 0.5.1 | what it does |",
        "|---|---|---|---|",
    ]
    for difference in LINEAGE_DIFFERENCES:
        msst = per_model({model: f"`{msst_default(model, difference.keyword)}`" for model in BOTH}, " ", ", ")
        upstream = per_model({model: upstream_text(difference.upstream[model]) for model in BOTH}, ": ", "; ")
        rows.append(f"| `{difference.keyword}` | {msst} | {upstream} | {difference.meaning} |")
    return "\n".join(rows)


# --- MSST config keys -------------------------------------------------------------------------------------

# COMPAT: MSST: model keywords that only pick a kernel or a debugging aid: the weights and outputs are the
# same without them, so `from_msst` drops them (with a warning when they are set)
IGNORED_MSST_MODEL_KEYS = frozenset({"sage_attention", "debug_visualize", "debug_visualize_dir", "debug_visualize_max_items"})

_AXIAL_MSST_KEYWORDS = (
    "dim depth stereo num_stems dim_head heads attn_dropout ff_dropout flash_attn dim_freqs_in stft_n_fft "
    "stft_hop_length stft_win_length stft_normalized stft_window_fn zero_dc mask_estimator_depth "
    "multi_stft_resolution_loss_weight multi_stft_resolutions_window_sizes multi_stft_hop_size "
    "multi_stft_normalized multi_stft_window_fn mlp_expansion_factor use_torch_checkpoint skip_connection"
).split()
_TRANSFORMER_STACKS = ["time_transformer_depth", "freq_transformer_depth", "linear_transformer_depth", "use_pope"]
_CONFORMER_STACKS = ["time_conformer_depth", "freq_conformer_depth", "linear_conformer_depth", "ff_mult",
                     "conv_expansion_factor", "conv_kernel_size"]
_BS_BANDS, _MEL_BANDS = ["freqs_per_bands"], ["num_bands", "sample_rate", "match_input_audio_length"]
# COMPAT: MSST (commit ccc011a): the keywords its model files take; `to_msst` writes others only when they
# differ from our default (MSST cannot build such a model anyway). Its BS files have no sample_rate and no
# match_input_audio_length (they always restore the length); no file has freq_range, value_residual,
# linear_flash_attn, use_shared_bias, loss or sum_stem_losses. A model type without an entry has no MSST
# model file: every setting is written.
MSST_MODEL_KEYWORDS: Dict[str, frozenset] = {
    "bs_roformer": frozenset(_AXIAL_MSST_KEYWORDS + _TRANSFORMER_STACKS + _BS_BANDS),
    "mel_band_roformer": frozenset(_AXIAL_MSST_KEYWORDS + _TRANSFORMER_STACKS + _MEL_BANDS),
    "bs_conformer": frozenset(_AXIAL_MSST_KEYWORDS + _CONFORMER_STACKS + _BS_BANDS),
    "mel_band_conformer": frozenset(_AXIAL_MSST_KEYWORDS + _CONFORMER_STACKS + _MEL_BANDS),
}


def drop_ignored_msst_keys(section: Dict[str, Any]) -> Dict[str, Any]:
    """The model section without `IGNORED_MSST_MODEL_KEYS`; a warning for each one that is set."""
    for key in sorted(IGNORED_MSST_MODEL_KEYS & set(section)):
        value = section.pop(key)
        if value:
            warnings.warn(f"config setting {key}: {value!r} is not supported and is ignored (the weights are the same)")
    return section


# --- checkpoint layouts -----------------------------------------------------------------------------------


def renumber_empty_linear_slot(model: torch.nn.Module, state_dict: StateDict) -> StateDict:
    """The state dict with upstream Mel's axial-layer slots renumbered for `model`, when they need it."""
    # COMPAT: upstream bs-roformer 0.5.1's MelBandRoformer with linear_transformer_depth=0 keeps an empty
    # slot for the linear transformer, so its time/freq transformers are layers.<i>.1/.2; MSST's are .0/.1
    has_slot_zero = any(key.startswith("layers.0.0.") for key in state_dict)
    has_slot_two = any(key.startswith("layers.0.2.") for key in state_dict)
    model_blocks = getattr(model, "layers", [])
    if has_slot_zero or not has_slot_two or not model_blocks or len(model_blocks[0]) != 2:
        return state_dict
    return {re.sub(r"^layers\.(\d+)\.(\d+)\.", lambda m: f"layers.{m[1]}.{int(m[2]) - 1}.", k): v for k, v in state_dict.items()}


# the SW export's shared attention biases: top-level name -> the name under every attention
SHARED_BIASES = {"shared_qkv_bias": "to_qkv.bias", "shared_out_bias": "to_out.0.bias"}


def with_shared_biases(model: torch.nn.Module, state_dict: StateDict) -> StateDict:
    """The state dict with every attention's copy of the shared biases, when it stores them once."""
    # COMPAT: the BS-RoFormer SW export stores its shared biases once at the top level; splifft's state dict
    # also under every attention
    if not any(name in state_dict for name in SHARED_BIASES):
        return state_dict
    copies = {
        key: state_dict[shared]
        for key in model.state_dict()
        for shared, suffix in SHARED_BIASES.items()
        if key.endswith("." + suffix) and shared in state_dict
    }
    return {**copies, **state_dict}


# --- command lines ----------------------------------------------------------------------------------------

MSST_INFERENCE = "MSST inference.py"
AUDIO_SEPARATOR = "audio-separator"
LOSSLESS_BS_ROFORMER = "axeldelafosse bs_roformer (Lossless BS-RoFormer)"

# COMPAT: other tools' spellings of `bs-roformer`'s flags, so their documented commands run unchanged:
# our flag -> (their flag, tool). Flags we spell as MSST does (--input_folder, --model_type,
# --extract_instrumental, --force_cpu, --device_ids, --use_tta, --disable_detailed_pbar, --flac_file;
# audio-separator's --extra_models, -l/--list_models, --list_filter, --list_format) need no alias.
CLI_ALIASES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "--model": (("--start_check_point", MSST_INFERENCE), ("--model_filename", AUDIO_SEPARATOR)),
    "--config": (("--config_path", MSST_INFERENCE),),
    "--cache-dir": (("--model_file_dir", AUDIO_SEPARATOR),),
    "--output": (("--store_dir", MSST_INFERENCE), ("--output_folder", LOSSLESS_BS_ROFORMER), ("--output_dir", AUDIO_SEPARATOR)),
    "--filename-template": (("--filename_template", MSST_INFERENCE),),
    "--pcm-type": (("--pcm_type", MSST_INFERENCE),),
    "--ensemble": (("--ensemble_algorithm", AUDIO_SEPARATOR),),
    "--ensemble-weights": (("--ensemble_weights", AUDIO_SEPARATOR),),
    "--ensemble-preset": (("--ensemble_preset", AUDIO_SEPARATOR),),
    "--download-only": (("--download_model_only", AUDIO_SEPARATOR),),
}


def cli_flags(flag: str) -> Tuple[str, ...]:
    """Our flag and the other tools' spellings of it, for `parser.add_argument(*cli_flags("--model"), ...)`."""
    return (flag, *(alias for alias, _ in CLI_ALIASES.get(flag, ())))


# --- architecture inference -------------------------------------------------------------------------------

# nothing in the weights tells the hop: published RoFormer checkpoints nearly all use n_fft 2048 with a
# 441-sample hop at 44.1 kHz (10 ms); for other sizes, a quarter window
ASSUMED_SAMPLE_RATE = 44100


def assumed_hop(n_fft: int) -> int:
    return 441 if n_fft == 2048 else n_fft // 4


@dataclass
class Inferred:
    """What a recogniser read from a state dict: the model type, an MSST model section, and what it assumed."""

    model_type: str
    settings: Dict[str, Any]
    notes: List[str] = field(default_factory=list)

    def assume(self, name: str, value: Any, why: str) -> None:
        """Set a setting the tensors do not tell, with a note."""
        self.settings[name] = value
        self.notes.append(f"{name}={value} assumed ({why})")


Recogniser = Callable[[StateDict], Optional[Inferred]]


def infer_architecture(state_dict: StateDict) -> Inferred:
    """The architecture of a state dict, by the first recogniser in `RECOGNISERS` that claims it."""
    for recognise in RECOGNISERS:
        inferred = recognise(state_dict)
        if inferred is not None:
            return inferred
    families = ", ".join(recogniser.__name__.removeprefix("recognise_") for recogniser in RECOGNISERS)
    raise ValueError(f"these weights are not of a model family bs_roformer can recognise ({families})")


def recognise_bsrnn(state_dict: StateDict) -> Optional[Inferred]:
    """BSRNN: `layers.<i>.across_time` / `across_bands` sequence layers (and optional full-band attention)."""
    keys = set(state_dict)
    if "layers.0.across_time.proj.weight" not in keys or "band_split.to_features.0.1.weight" not in keys:
        return None
    shape = lambda key: tuple(state_dict[key].shape)  # noqa: E731
    dim = shape("band_split.to_features.0.1.weight")[0]
    layer = "layers.0.across_time.layer"
    if f"{layer}.conv.weight" in keys:
        channels_out, _, kernel = shape(f"{layer}.conv.weight")
        layer_settings = dict(layer_type="conv", hidden=channels_out // 2, conv_kernel_size=kernel)
    else:
        gates_x_hidden, hidden = shape(f"{layer}.weight_hh_l0")
        layer_settings = dict(layer_type="lstm" if gates_x_hidden == 4 * hidden else "gru", hidden=hidden)
    # each band's mask MLP: a norm, then Linear (+ Tanh + Linear)...; to_freqs.<band>.1.<index>
    mask_linears = _indexed_shapes(state_dict, r"mask_estimators\.0\.to_freqs\.0\.1\.(\d+)\.weight")
    inferred = Inferred("bsrnn", dict(
        dim=dim,
        depth=_count(keys, r"layers\.(\d+)\.across_time\."),
        num_stems=_count(keys, r"mask_estimators\.(\d+)\.to_freqs\.0\.0\.gamma"),
        mask_estimator_depth=mask_estimator_depth_for("bsrnn", len(mask_linears) - 1),
        **layer_settings,
    ))
    if len(mask_linears) > 1:
        inferred.settings["mlp_expansion_factor"] = mask_linears[0][0] // dim
    if "layers.0.attention.to_qk.weight" in keys:
        _infer_attention_heads(inferred, shape("layers.0.attention.to_qk.weight")[0] // 2, dim)
    _infer_contiguous_bands(inferred, state_dict)
    inferred.assume("stft_hop_length", inferred.settings["stft_n_fft"] // 4, "not in the weights; BSRNN's quarter window")
    inferred.notes.append("zero_dc off and input length restored, BSRNN's defaults (not in the weights)")
    _assume_sample_rate(inferred)
    return inferred


def _infer_attention_heads(inferred: Inferred, heads_x_attention_dim: int, dim: int) -> None:
    # to_qk holds heads x attention_dim rows per query and key: only their product is in the weights
    default_attention_dim = 4
    if heads_x_attention_dim % default_attention_dim == 0 and dim % (heads_x_attention_dim // default_attention_dim) == 0:
        heads = heads_x_attention_dim // default_attention_dim
    else:
        heads = 1
    inferred.settings["attention_heads"] = heads
    inferred.assume(
        "attention_dim", heads_x_attention_dim // heads,
        f"the weights give only attention_heads x attention_dim = {heads_x_attention_dim}; attention_heads={heads} taken",
    )


def recognise_roformer(state_dict: StateDict) -> Optional[Inferred]:
    """BS-/Mel-Band RoFormer and Conformer: axial blocks `layers.<i>.<slot>.layers.<j>` (attention + feed-forward,
    or Conformer blocks), with the attention options of inference/backbone_variants.py (PoPE, shared biases)."""
    from .inference import backbone_variants  # its key families are built from models: imported when used

    view = backbone_variants.backbone_view(state_dict)  # Conformer blocks' attention under a transformer's names
    keys = set(view)
    if "band_split.to_features.0.1.weight" not in keys or not any(re.match(r"layers\.0\.\d+\.layers\.", k) for k in keys):
        return None
    backbone_variants.check_known_key_families(state_dict)
    if "final_norm.gamma" in keys:  # BS: one norm after the axial transformer
        inferred = Inferred("bs_roformer", _axial_settings(view))
        _infer_contiguous_bands(inferred, view)
    else:  # Mel: a norm after each transformer, overlapping mel bands
        inferred = Inferred("mel_band_roformer", _axial_settings(view))
        _infer_mel_bands(inferred, view)

    if inferred.settings["value_residual"]:
        # COMPAT: only upstream bs-roformer 0.5.x has value residual: use its iSTFT conventions
        inferred.settings.update(upstream_settings("bs_roformer"))
        inferred.notes.append("value-residual weights: treated as upstream bs-roformer 0.5.x (zero_dc off, length not restored)")
    else:
        inferred.notes.append("zero_dc on and input length restored, as in Music-Source-Separation-Training (not in the weights)")
    inferred.assume("stft_hop_length", assumed_hop(inferred.settings["stft_n_fft"]), "not in the weights")
    inferred.assume("skip_connection", False, "it has no weights")
    inferred.model_type = backbone_variants.apply_backbone_variant(state_dict, inferred.model_type, inferred.settings, inferred.notes)
    hidden_layers = inferred.settings.pop("mask_hidden_layers")
    inferred.settings["mask_estimator_depth"] = mask_estimator_depth_for(inferred.model_type, hidden_layers)
    _assume_sample_rate(inferred)
    return inferred


def _axial_settings(state_dict: StateDict) -> Dict[str, Any]:
    """The axial backbone's settings (as a RoFormer's), and `mask_hidden_layers` for the family's depth rule."""
    keys = set(state_dict)
    shape = lambda key: tuple(state_dict[key].shape)  # noqa: E731
    dim = shape("band_split.to_features.0.1.weight")[0]
    # each axial block: [linear transformer (has a temperature),] time, frequency
    transformers = sorted({int(m[1]) for k in keys if (m := re.match(r"layers\.0\.(\d+)\.", k))})
    linear = [t for t in transformers if f"layers.0.{t}.layers.0.0.temperature" in keys]
    time_index, freq_index = [t for t in transformers if t not in linear][:2]
    layer_count = lambda t: _count(keys, rf"layers\.0\.{t}\.layers\.(\d+)\.")  # noqa: E731
    attention = f"layers.0.{time_index}.layers.0.0"
    heads = shape(f"{attention}.to_gates.weight")[0]
    mask_linears = _indexed_shapes(state_dict, r"mask_estimators\.0\.to_freqs\.0\.0\.(\d+)\.weight")
    settings: Dict[str, Any] = dict(
        dim=dim,
        depth=_count(keys, r"layers\.(\d+)\."),
        num_stems=_count(keys, r"mask_estimators\.(\d+)\.to_freqs\.0\.0\.0\.weight"),
        time_transformer_depth=layer_count(time_index),
        freq_transformer_depth=layer_count(freq_index),
        linear_transformer_depth=layer_count(linear[0]) if linear else 0,
        heads=heads,
        dim_head=shape(f"{attention}.to_qkv.weight")[0] // (3 * heads),
        value_residual=any(".to_value_residual_mix." in key for key in keys),
        mask_hidden_layers=len(mask_linears) - 1,
    )
    if len(mask_linears) > 1:
        settings["mlp_expansion_factor"] = mask_linears[0][0] // dim
    return settings


def _band_widths(state_dict: StateDict) -> List[int]:
    """Each band's input width = 2 (re/im) x channels x bins."""
    return [shape[0] for shape in _indexed_shapes(state_dict, r"band_split\.to_features\.(\d+)\.0\.gamma")]


def _infer_contiguous_bands(inferred: Inferred, state_dict: StateDict) -> None:
    """stereo, stft_n_fft, stft_win_length and freqs_per_bands of non-overlapping bands over every bin."""
    widths = _band_widths(state_dict)
    for channels in (2, 1):
        if any(width % (2 * channels) for width in widths):
            continue
        bins = [width // (2 * channels) for width in widths]
        n_fft = 2 * (sum(bins) - 1)
        if n_fft >= 2 and n_fft & (n_fft - 1) == 0:  # the STFT sizes in use are powers of two
            inferred.settings.update(stereo=channels == 2, stft_n_fft=n_fft, freqs_per_bands=tuple(bins))
            inferred.notes.append(f"freq_range=None assumed (the bands' {sum(bins)} bins taken for all of a {n_fft}-point STFT)")
            inferred.assume("stft_win_length", n_fft, "not in the weights")
            return
    raise ValueError(f"cannot tell the STFT size and channel count from band input widths {dict(Counter(widths))}")


def _infer_mel_bands(inferred: Inferred, state_dict: StateDict) -> None:
    """stereo, stft_n_fft, stft_win_length, num_bands and sample_rate: the mel filter bank whose bands have these widths."""
    widths = _band_widths(state_dict)
    for channels in (2, 1):
        if any(width % (2 * channels) for width in widths):
            continue
        bins = [width // (2 * channels) for width in widths]
        for n_fft in (2048, 4096, 1024, 8192, 512, 256, 16384):
            for sample_rate in (44100, 48000, 32000, 22050, 16000):
                try:
                    membership = mel_band_membership(sample_rate, n_fft, len(bins))
                except ValueError:  # this many bands leave bins uncovered at this size
                    continue
                if membership.sum(dim=1).tolist() == bins:
                    inferred.settings.update(stereo=channels == 2, stft_n_fft=n_fft, num_bands=len(bins), sample_rate=sample_rate)
                    inferred.assume("stft_win_length", n_fft, "not in the weights")
                    return
    raise ValueError(f"cannot tell the STFT size and channel count from band input widths {dict(Counter(widths))}")


def _assume_sample_rate(inferred: Inferred) -> None:
    if "sample_rate" not in inferred.settings:
        inferred.assume("sample_rate", ASSUMED_SAMPLE_RATE, "not in the weights")


def _indexed_shapes(state_dict: StateDict, pattern: str) -> List[Tuple[int, ...]]:
    found = {int(m.group(1)): tuple(v.shape) for k, v in state_dict.items() if (m := re.fullmatch(pattern, k))}
    return [found[index] for index in sorted(found)]


def _count(keys: Sequence[str], pattern: str) -> int:
    """1 + the largest index the first group of `pattern` matches at the start of a key (0 if none)."""
    indices = [int(m.group(1)) for key in keys if (m := re.match(pattern, key))]
    return 1 + max(indices) if indices else 0


def recognise_roformer_with_mask_head(state_dict: StateDict) -> Optional[Inferred]:
    """A RoFormer with a variant mask head (HyperACE, axial refiner): bs_roformer/inference/mask_heads.py."""
    from .inference import mask_heads

    return mask_heads.recognise_roformer_with_mask_head(state_dict)


# more specific first: each returns None for weights of another family
RECOGNISERS: List[Recogniser] = [recognise_bsrnn, recognise_roformer_with_mask_head, recognise_roformer]
