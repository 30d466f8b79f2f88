"""Build bs_roformer/data/registry.json and bs_roformer/configs/zoo/*.yaml from the public model lists.

    python scripts/build_registry.py          # regenerate the registry, its configs, README's table and docs/models.md

Sources of facts (names, URLs, stems, sizes, digests, configs), read from the installed reference packages
(tests/references.py installs them into ~/.cache/bs_roformer-test-references, or $BS_ROFORMER_REFERENCE_DIR):
- splifft 0.0.9: `splifft/data/registry.json` (entries, URLs, sha256 digests, sizes) and `data/config/*.json`
  (model settings, converted here to MSST YAML);
- audio-separator 0.47.1: `models.json` (the checkpoint file names its users type) and `models-scores.json`
  (the stems of the models it scored); its download rule (UVR release first, then its own release);
- MSST's docs/pretrained_models.md and docs/mel_roformer_experiments.md (the table below, copied by hand).

The output is committed: users need none of this. Entries whose checkpoint is not a direct download
(Google Drive pages, mega.nz, Yandex Disk folders) are left out.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bs_roformer.cli.models import write_model_docs  # noqa: E402
from bs_roformer.inference.config import model_from_config, read_config, stem_names  # noqa: E402
from bs_roformer.inference.ensemble import ALGORITHMS  # noqa: E402

DATA = ROOT / "bs_roformer" / "data" / "registry.json"
CONFIG_DIR = ROOT / "bs_roformer" / "configs"
ZOO_CONFIGS = CONFIG_DIR / "zoo"
REFERENCES = Path(os.environ.get("BS_ROFORMER_REFERENCE_DIR") or Path.home() / ".cache" / "bs_roformer-test-references")
SPLIFFT = REFERENCES / "splifft-0.0.9" / "splifft" / "data"
AUDIO_SEPARATOR = REFERENCES / "audio-separator-0.47.1" / "audio_separator"

UVR_RELEASE = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
AS_RELEASE = "https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs/"
UVR_CONFIGS = "https://raw.githubusercontent.com/TRvlvr/application_data/main/mdx_model_data/mdx_c_configs/"
MSST_RELEASE = "https://github.com/ZFTurbo/Music-Source-Separation-Training/releases/download/"
NOT_DIRECT = ("drive.google.com", "mega.nz", "disk.yandex.ru")

# --- the entries that existed before the zoo: their names, aliases and MSST configs stay ----------------
CLASSIC = {
    "bs_roformer-zfturbo-musdb18": dict(
        name="model_bs_roformer_ep_17_sdr_9.6568", aliases=["bs_roformer_4stem", "default"],
        config="config_bs_roformer_384_8_2_485100.yaml",
        description="ZFTurbo BS-RoFormer, 4 stems, MUSDB18-HQ only (MUSDB test SDR 9.65)"),
    "bs_roformer-viperx-1297": dict(
        name="model_bs_roformer_ep_317_sdr_12.9755", aliases=["viperx_bs_1297"],
        config="model_bs_roformer_ep_317_sdr_12.9755.yaml", description="viperx BS-RoFormer 1297, vocals"),
    "bs_roformer-viperx-1296": dict(
        name="model_bs_roformer_ep_368_sdr_12.9628", aliases=["viperx_bs_1296"],
        config="model_bs_roformer_ep_368_sdr_12.9628.yaml", description="viperx BS-RoFormer 1296, vocals"),
    "mel_roformer-kim-vocals": dict(
        name="vocals_mel_band_roformer_kj", aliases=["kj_mel_vocals"],
        config="config_vocals_mel_band_roformer_kj.yaml", description="Kimberley Jensen Mel-Band RoFormer, vocals"),
    "mel_roformer-aufr33-karaoke": dict(
        name="mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956", aliases=["karaoke"],
        config="config_mel_band_roformer_karaoke.yaml",
        description="aufr33 & viperx Mel-Band RoFormer karaoke: lead vocals apart from the rest"),
}

# splifft entries renamed: the name says what the checkpoint is (the old id stays an alias where it is not wrong)
RENAMED = {
    # its URL is the first Dereverb-Echo checkpoint (SDR 10.0169, MSST's table); the fused one is below
    "mel_roformer-sucial-dereverb_echo_fused": ("mel_roformer-sucial-dereverb_echo", False),
    # its file is voc_gaboxBSR.ckpt and it outputs vocals
    "bs_roformer-gabox-instrumental": ("bs_roformer-gabox-vocals", True),
}

# audio-separator file names that are re-hosts of a splifft entry (same model by name and config)
AS_ALIASES = {
    "mel_band_roformer_karaoke_gabox.ckpt": "mel_roformer-gabox-kar_gabox",
    "mel_band_roformer_karaoke_gabox_v2.ckpt": "mel_roformer-gabox-kar_v2",
    "bs_roformer_karaoke_anvuew.ckpt": "bs_roformer-anvuew-karaoke",
    "mel_band_roformer_denoise_debleed_gabox.ckpt": "mel_roformer-gabox-denoisedebleed",
    "vocals_mel_band_roformer.ckpt": "mel_roformer-kim-vocals",
    "mel_band_roformer_kim_ft_unwa.ckpt": "mel_roformer-unwa-kim_ft",
    "mel_band_roformer_kim_ft2_unwa.ckpt": "mel_roformer-unwa-kim_ft2",
    "mel_band_roformer_kim_ft2_bleedless_unwa.ckpt": "mel_roformer-unwa-kim_ft2_bleedless",
    "melband_roformer_inst_v1_plus.ckpt": "mel_roformer-unwa-v1_plus",
    "melband_roformer_inst_v1e.ckpt": "mel_roformer-unwa-v1e",
    "melband_roformer_inst_v1e_plus.ckpt": "mel_roformer-unwa-v1e_plus",
    "bs_roformer_vocals_revive_unwa.ckpt": "bs_roformer-unwa-revive",
    "bs_roformer_vocals_revive_v2_unwa.ckpt": "bs_roformer-unwa-revive2",
    "bs_roformer_vocals_revive_v3e_unwa.ckpt": "bs_roformer-unwa-revive3e",
    "mel_band_roformer_vocal_fullness_aname.ckpt": "mel_roformer-amane-fullnessvocalmodel",
    "bs_roformer_vocals_gabox.ckpt": "bs_roformer-gabox-instrumental",
    "mel_band_roformer_vocals_gabox.ckpt": "mel_roformer-gabox-voc_gabox",
    "mel_band_roformer_vocals_v2_gabox.ckpt": "mel_roformer-gabox-voc_gabox2",
    **{f"mel_band_roformer_vocals_fv{i}_gabox.ckpt": f"mel_roformer-gabox-voc_fv{i}" for i in range(1, 7)},
    "mel_band_roformer_instrumental_3_gabox.ckpt": "mel_roformer-gabox-inst_v3",
    "mel_band_roformer_instrumental_bleedless_v3_gabox.ckpt": "mel_roformer-gabox-inst_gaboxbv3",
    "mel_band_roformer_instrumental_fullness_v3_gabox.ckpt": "mel_roformer-gabox-inst_gaboxfv3",
    "mel_band_roformer_instrumental_fullness_v4_gabox.ckpt": "mel_roformer-gabox-inst_fv4",
    "mel_band_roformer_instrumental_instv5_gabox.ckpt": "mel_roformer-gabox-instv5",
    "mel_band_roformer_instrumental_instv5n_gabox.ckpt": "mel_roformer-gabox-instv5n",
    "mel_band_roformer_instrumental_instv6_gabox.ckpt": "mel_roformer-gabox-instv6",
    "mel_band_roformer_instrumental_instv6n_gabox.ckpt": "mel_roformer-gabox-instv6n",
    "mel_band_roformer_instrumental_instv7_gabox.ckpt": "mel_roformer-gabox-instv7",
    "mel_band_roformer_instrumental_instv7n_gabox.ckpt": "mel_roformer-gabox-inst_v7n",
    "mel_band_roformer_instrumental_instv8n_gabox.ckpt": "mel_roformer-gabox-instv8n",
    "mel_band_roformer_instrumental_fv7z_gabox.ckpt": "mel_roformer-gabox-inst_gaboxfv7z",
    "mel_band_roformer_instrumental_fv8_gabox.ckpt": "mel_roformer-gabox-inst_gaboxfv8",
    "mel_band_roformer_instrumental_fv8b_gabox.ckpt": "mel_roformer-gabox-inst_fv8b",
    "mel_band_roformer_instrumental_fvx_gabox.ckpt": "mel_roformer-gabox-inst_fvx",
    "dereverb_mel_band_roformer_mono_anvuew.ckpt": "mel_roformer-anvuew-dereverb_mono",
    "melband_roformer_big_beta5e.ckpt": "mel_roformer-unwa-big_beta5e",
    "melband_roformer_big_beta6.ckpt": "mel_roformer-unwa-big_beta6",
    "melband_roformer_big_beta6x.ckpt": "mel_roformer-unwa-big_beta6x",
    "mel_band_roformer_bleed_suppressor_v1.ckpt": "mel_roformer-unwa-bleed_suppressor_v1",
    "bs_roformer_vocals_resurrection_unwa.ckpt": "bs_roformer-unwa-resurrection_vocals",
    "bs_roformer_instrumental_resurrection_unwa.ckpt": "bs_roformer-unwa-resurrection_instrumental",
}

# audio-separator checkpoints no other list has: name, authors, stems (from models-scores.json where it
# scored them, else from the model's title), purpose; URLs follow audio-separator's download rule
AS_ONLY = {
    "bs_roformer_karaoke_frazer_becruily.ckpt": ("bs_roformer-becruily-karaoke_frazer", ["frazer", "becruily"], ["lead_vocals"], "separation"),
    "deverb_bs_roformer_8_384dim_10depth.ckpt": ("bs_roformer-dereverb_384dim_10depth", [], ["noreverb"], "dereverb"),
    "mel_band_roformer_kim_ft3_unwa.ckpt": ("mel_roformer-unwa-kim_ft3", ["unwa"], ["vocals"], "separation"),
    "mel_band_roformer_vocals_fv7b_gabox.ckpt": ("mel_roformer-gabox-voc_fv7b", ["gabox"], ["vocals"], "separation"),
    "mel_band_roformer_instrumental_gabox.ckpt": ("mel_roformer-gabox-inst_gabox", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_2_gabox.ckpt": ("mel_roformer-gabox-inst_gabox2", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_bleedless_v1_gabox.ckpt": ("mel_roformer-gabox-inst_bleedless_v1", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_bleedless_v2_gabox.ckpt": ("mel_roformer-gabox-inst_bleedless_v2", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_fullness_v1_gabox.ckpt": ("mel_roformer-gabox-inst_fullness_v1", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_fullness_v2_gabox.ckpt": ("mel_roformer-gabox-inst_fullness_v2", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_fullness_noise_v4_gabox.ckpt": ("mel_roformer-gabox-inst_fullness_noise_v4", ["gabox"], ["instrumental"], "separation"),
    "mel_band_roformer_instrumental_instv8_gabox.ckpt": ("mel_roformer-gabox-instv8", ["gabox"], ["instrumental"], "separation"),
    "dereverb_big_mbr_ep_362.ckpt": ("mel_roformer-sucial-dereverb_big", ["sucial"], ["dry"], "dereverb"),
    "dereverb_super_big_mbr_ep_346.ckpt": ("mel_roformer-sucial-dereverb_super_big", ["sucial"], ["dry"], "dereverb"),
    "dereverb-echo_mel_band_roformer_sdr_13.4843_v2.ckpt": ("mel_roformer-sucial-dereverb_echo_v2", ["sucial"], ["dry"], "dereverb"),
    "dereverb_echo_mbr_fused.ckpt": ("mel_roformer-sucial-dereverb_echo_fused", ["sucial"], ["dry"], "dereverb"),
    "MelBandRoformerSYHFT.ckpt": ("mel_roformer-syh99999-syhft", ["SYH99999"], ["vocals"], "separation"),
    "MelBandRoformerSYHFTV2.ckpt": ("mel_roformer-syh99999-syhft_v2", ["SYH99999"], ["vocals"], "separation"),
    "MelBandRoformerSYHFTV2.5.ckpt": ("mel_roformer-syh99999-syhft_v2_5", ["SYH99999"], ["vocals"], "separation"),
    "MelBandRoformerSYHFTV3Epsilon.ckpt": ("mel_roformer-syh99999-syhft_v3_epsilon", ["SYH99999"], ["vocals"], "separation"),
    "MelBandRoformerBigSYHFTV1.ckpt": ("mel_roformer-syh99999-big_syhft_v1", ["SYH99999"], ["vocals"], "separation"),
    "aspiration_mel_band_roformer_sdr_18.9845.ckpt": ("mel_roformer-sucial-aspiration", ["sucial"], ["aspiration"], "separation"),
    "aspiration_mel_band_roformer_less_aggr_sdr_18.1201.ckpt": ("mel_roformer-sucial-aspiration_less_aggr", ["sucial"], ["aspiration"], "separation"),
    "bs_roformer_instrumental_resurrection_gabox.ckpt": ("bs_roformer-gabox-resurrection_instrumental", ["gabox"], ["instrumental"], "separation"),
    # the MSST-format re-host of the SW 6-stem model (the raw fp16 export is bs_roformer-fruit-sw)
    "BS-Roformer-SW.ckpt": ("bs_roformer-jarredou-sw", ["jarredou"], ["bass", "drums", "other", "vocals", "guitar", "piano"], "separation"),
}
# where MSST's table names the author's own host, it comes first
AS_PRIMARY = {
    "aspiration_mel_band_roformer_sdr_18.9845.ckpt":
        "https://huggingface.co/Sucial/Aspiration_Mel_Band_Roformer/resolve/main/aspiration_mel_band_roformer_sdr_18.9845.ckpt",
}

# MSST's tables (docs/pretrained_models.md, docs/mel_roformer_experiments.md at ccc011a)
_MUSDB = ["bass", "drums", "vocals", "other"]
MSST = [
    dict(name="model_mel_band_roformer_ep_3005_sdr_11.4360", aliases=["viperx_mel_1143"], architecture="mel_band_roformer",
         authors=["viperx"], stems=["vocals"], url=UVR_RELEASE + "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt",
         config="model_mel_band_roformer_ep_3005_sdr_11.4360.yaml", description="viperx Mel-Band RoFormer 1143, vocals"),
    dict(name="bs_roformer-zfturbo-polarformer", architecture="bs_roformer", variant="pope", authors=["zfturbo"],
         stems=["vocals"], url=MSST_RELEASE + "v1.0.20/model_bs_polarformer_float16.ckpt",
         config_urls=[MSST_RELEASE + "v1.0.20/model_bs_polarformer_float16.yaml"],
         description="ZFTurbo BS PolarFormer (PoPE attention), vocals, fp16 (Multisong SDR 11.00)"),
    dict(name="bs_conformer-zfturbo-musdb18", architecture="bs_conformer", variant="conformer", authors=["zfturbo"],
         stems=_MUSDB, url=MSST_RELEASE + "v1.0.18/fused_model_bs_conformer_sdr_9.18.ckpt",
         config_urls=[MSST_RELEASE + "v1.0.18/config_musdb18_bs_conformer_infer.yaml"],
         description="ZFTurbo BS-Conformer (medium), 4 stems, MUSDB18-HQ only (MUSDB test SDR 9.18)"),
]
_EXPERIMENTS = {  # checkpoint -> config file in MSST release v1.0.11 (MUSDB18-HQ only, 4 stems)
    "model_mel_band_roformer_experimental_ep_53_sdr_5.1235": "model_mel_band_roformer_experimental_ep_53_sdr_5.1235_config_mel_64_2_1_88200_experimental.yaml",
    "model_mel_band_roformer_ep_38_sdr_6.4698": "model_mel_band_roformer_ep_38_sdr_6.4698.yaml",
    "model_mel_band_roformer_experimental_ep_166_sdr_6.7022": "model_mel_band_roformer_experimental_ep_166_sdr_6.7022_config_mel_128_4_1_88200_big_fft_4096.yaml",
    "model_mel_band_roformer_ep_168_sdr_7.8127": "model_mel_band_roformer_ep_168_sdr_7.8127_config_mel_256_6_1_88200.yaml",
    "model_mel_band_roformer_experimental_ep_15_sdr_6.4908": "model_mel_band_roformer_experimental_ep_15_sdr_6.4908.yaml",
    "model_mel_band_roformer_experimental_ep_9_sdr_6.5254": "model_mel_band_roformer_experimental_ep_9_sdr_6.5254.yaml",
    "model_mel_band_roformer_experimental_ep_48_sdr_7.0412": "model_mel_band_roformer_experimental_ep_48_sdr_7.0412_config_mel_128_4_1_352800_big_fft_4096.yaml",
    "model_mel_band_roformer_ep_1_sdr_8.2175": "model_mel_band_roformer_ep_1_sdr_8.2175.yaml",
    "model_mel_band_roformer_ep_7_sdr_6.8652": "model_mel_band_roformer_ep_7_sdr_6.8652.yaml",
}
for _checkpoint, _config in _EXPERIMENTS.items():
    _sdr = _checkpoint.rsplit("_sdr_", 1)[1]
    MSST.append(dict(name=f"mel_roformer-zfturbo-musdb18_sdr_{_sdr}", architecture="mel_band_roformer", authors=["zfturbo"],
                     stems=_MUSDB, url=f"{MSST_RELEASE}v1.0.11/{_checkpoint}.ckpt", config_urls=[f"{MSST_RELEASE}v1.0.11/{_config}"],
                     description=f"ZFTurbo Mel-Band RoFormer experiment, 4 stems, MUSDB18-HQ only (MUSDB test SDR {_sdr})"))

MASK_HEADS = {"hyperace_residual_v1": "hyperace_v1", "hyperace_residual_v2": "hyperace_v2", "axial_refiner_large_v2": "large_inst_v2"}
STEM_NAMES = {"instrum": "instrumental"}  # splifft's short name; the command line and MSST say instrumental


class Unconvertible(ValueError):
    """A splifft config that needs settings MSST configs do not have (the published YAML is used instead)."""


def stem(name: str) -> str:
    return STEM_NAMES.get(name, name)


def complement(target: str) -> str:
    """The second instrument of a single-target MSST config (what the model's complement is called)."""
    return {"vocals": "instrumental", "instrumental": "vocals"}.get(target, "other")


def msst_config(splifft: Dict[str, Any], shared_bias: bool = False) -> Dict[str, Any]:
    """A splifft 0.0.9 config (JSON) as an MSST config (audio / model / training / inference).

    shared_bias: the checkpoint has the SW export's shared attention biases, which splifft drops (they are
    zeros) and our loader keeps.
    """
    model, transform = splifft["model"], splifft.get("transform", {})
    band = model["band_config"]
    mel = band["kind"] == "mel"
    head = model.get("mask_estimator", {}).get("kind", "baseline")
    if head != "baseline":
        raise Unconvertible(f"mask head {head}")
    # splifft's one model class has Mel's norm after every transformer as norm_output; MSST's two files fix it
    if bool(model.get("norm_output", False)) != mel:
        raise Unconvertible("norm_output does not match the band kind")
    n_fft = transform.get("n_fft", band.get("stft_n_fft", 2048))
    hop = model.get("stft_hop_length", 512)  # splifft's default, as MSST's
    stems = [stem(name) for name in model["output_stem_names"]]
    section: Dict[str, Any] = dict(
        dim=model["dim"], depth=model["depth"], stereo=model.get("stereo", True), num_stems=len(stems),
        time_transformer_depth=model.get("time_transformer_depth", 1),
        freq_transformer_depth=model.get("freq_transformer_depth", 1),
        linear_transformer_depth=model.get("linear_transformer_depth", 0),
    )
    if mel:
        section.update(num_bands=band.get("num_bands", 60), sample_rate=band.get("sample_rate", 44100))
    elif "freqs_per_bands" in band:
        section["freqs_per_bands"] = tuple(band["freqs_per_bands"])
    # splifft builds mask_estimator_depth - 1 hidden layers in both band kinds; MSST's Mel file builds
    # mask_estimator_depth (lucidrains/BS-RoFormer#48): a splifft Mel depth is one more than MSST's
    depth = model.get("mask_estimator_depth", 2)
    section.update(
        dim_head=model.get("dim_head", 64), heads=model.get("heads", 8),
        attn_dropout=model.get("attn_dropout", 0.0), ff_dropout=model.get("ff_dropout", 0.0),
        flash_attn=model.get("flash_attn", True),
        stft_n_fft=n_fft, stft_hop_length=hop, stft_win_length=transform.get("win_length", 2048),
        stft_normalized=transform.get("normalized", False),
        mask_estimator_depth=depth - 1 if mel else depth,
        mlp_expansion_factor=model.get("mlp_expansion_factor", 4),
        skip_connection=model.get("skip_connection", False),
    )
    if shared_bias or model.get("use_shared_bias"):
        section["use_shared_bias"] = True
    overlap = splifft.get("waveform_chunking", {}).get("overlap_ratio", 0.5)  # splifft's default
    training = {"model_type": "mel_band_roformer" if mel else "bs_roformer"}
    if len(stems) == 1:
        training.update(instruments=[stems[0], complement(stems[0])], target_instrument=stems[0])
    else:
        training.update(instruments=stems, target_instrument=None)
    inference = {"batch_size": splifft.get("inference", {}).get("batch_size", 8), "num_overlap": round(1 / (1 - overlap))}
    if splifft.get("normalization", {}).get("enabled"):
        inference["normalize"] = True
    return {
        "audio": {"chunk_size": model["chunk_size"], "n_fft": n_fft, "hop_length": hop,
                  "num_channels": 2 if section["stereo"] else 1, "sample_rate": section.get("sample_rate", 44100)},
        "model": section, "training": training, "inference": inference,
    }


_PARAMETERS: Dict[str, int] = {}


def check_size(config: Dict[str, Any], size: Optional[int]) -> None:
    """The checkpoint size must be that of the config's parameters in fp32 or fp16 (a wrong stem count,
    mask depth or width shows here)."""
    if not size:
        return
    key = json.dumps(config["model"], sort_keys=True, default=list)
    if key not in _PARAMETERS:
        _PARAMETERS[key] = sum(p.numel() for p in model_from_config(read_config(config)).parameters())
    ratio = size / _PARAMETERS[key]
    if not (3.99 < ratio < 4.1 or 1.99 < ratio < 2.1):
        raise Unconvertible(f"{size} bytes do not fit the converted config's {_PARAMETERS[key]} parameters")


class TupleDumper(yaml.SafeDumper):
    """Writes tuples as MSST does (`!!python/tuple`), which our config reader reads safely."""


TupleDumper.add_representer(tuple, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:python/tuple", data, flow_style=True))


def write_config(config_id: str, config: Dict[str, Any]) -> str:
    path = ZOO_CONFIGS / f"{config_id}.yaml"
    header = f"# {config_id}: generated by scripts/build_registry.py from splifft 0.0.9 data/config/{config_id}.json\n"
    body = "\n".join(yaml.dump({key: value}, Dumper=TupleDumper, sort_keys=False, width=110) for key, value in config.items())
    path.write_text(header + body, encoding="utf-8")
    return f"zoo/{path.name}"


def splifft_entries(as_names: set) -> List[Dict[str, Any]]:
    registry = json.loads((SPLIFFT / "registry.json").read_text())
    aliases_of: Dict[str, List[str]] = {}
    for file_name, identifier in AS_ALIASES.items():
        aliases_of.setdefault(identifier, []).append(file_name)
    written: Dict[str, str] = {}  # config id -> shipped config
    entries = []
    for identifier, model in registry.items():
        if "roformer" not in model["architecture"]:
            continue
        resources = {resource["kind"]: resource for resource in reversed(model["resources"])}
        checkpoint = resources.get("model_ckpt")
        if checkpoint is None or any(host in checkpoint["url"] for host in NOT_DIRECT):
            print(f"left out {identifier}: no direct download ({checkpoint and checkpoint['url']})")
            continue
        url = checkpoint["url"]
        file_name = url.rsplit("/", 1)[-1]
        config_id = model.get("config_id")
        splifft_config = None
        if config_id and not config_id.startswith("."):  # dot files are splifft's untested MSST imports
            splifft_config = json.loads((SPLIFFT / "config" / f"{config_id}.json").read_text())
        variant = None
        if splifft_config is not None:
            head = splifft_config["model"].get("mask_estimator", {}).get("kind", "baseline")
            variant = MASK_HEADS.get(head)
            mel = splifft_config["model"]["band_config"]["kind"] == "mel"
        else:
            mel = model["architecture"] == "mel_roformer"
        if "fno" in identifier:
            variant = "fno"
        if "value_residual" in identifier:
            variant = "value_residual"
        if identifier == "bs_roformer-fruit-sw":
            variant = "shared_bias"  # the raw fp16 SW export: shared_qkv_bias / shared_out_bias, num_layers
        name, keep_old_name = RENAMED.get(identifier, (identifier, True))
        aliases = [identifier] if name != identifier and keep_old_name else []
        classic = CLASSIC.get(identifier)
        if classic:
            name = classic["name"]
            aliases = classic["aliases"] + [identifier]
        aliases += [file_name] + sorted(aliases_of.get(identifier, []))
        description = classic["description"] if classic else _description(model)
        entry: Dict[str, Any] = dict(
            name=name, aliases=_unique(aliases, name), architecture="mel_band_roformer" if mel else "bs_roformer",
            variant=variant, authors=model["authors"], stems=[stem(s) for s in model["output"]], purpose=model["purpose"],
            size=model.get("model_size"), sha256=checkpoint.get("digest", "").removeprefix("sha256:") or None,
            url=url, mirrors=[mirror for mirror in (UVR_RELEASE + file_name, AS_RELEASE + file_name) if mirror != url] if file_name in as_names else [],
            description=description, source="splifft 0.0.9",
        )
        if classic:
            entry["config"] = classic["config"]
            classic_config = read_config(CONFIG_DIR / classic["config"])
            entry["stems"] = stem_names(classic_config, classic_config["model"].get("num_stems", 1))
        elif splifft_config is not None and variant in (None, "shared_bias"):
            try:
                config = msst_config(splifft_config, shared_bias=variant == "shared_bias")
                if variant is None:
                    check_size(config, entry["size"])
                entry["config"] = written.get(config_id) or write_config(config_id, config)
                written[config_id] = entry["config"]
            except Unconvertible as reason:
                print(f"{identifier}: the published YAML is used ({reason})")
        if not entry.get("config"):
            entry.pop("config", None)
            config = resources.get("config_msst")
            if config is None:
                print(f"left out {identifier}: no config")
                continue
            entry["config_urls"] = [config["url"]]
        entries.append(entry)
    return entries


def _description(model: Dict[str, Any]) -> str:
    for block in model.get("description", []):
        for line in block.get("content", []):
            return line.strip().rstrip(".")[:100]
    return ""


def _unique(names: List[str], name: str) -> List[str]:
    seen = {name}
    return [alias for alias in names if not (alias in seen or seen.add(alias))]


def audio_separator_entries(taken: set) -> List[Dict[str, Any]]:
    models = json.loads((AUDIO_SEPARATOR / "models.json").read_text())["roformer_download_list"]
    entries = []
    for title, files in models.items():
        (file_name, config_name), = files.items()
        if file_name in taken or file_name in AS_ALIASES:
            continue
        if file_name not in AS_ONLY:
            raise SystemExit(f"audio-separator lists {file_name} ({title}): add it to AS_ONLY or AS_ALIASES")
        name, authors, stems, purpose = AS_ONLY[file_name]
        mirrors = [UVR_RELEASE + file_name, AS_RELEASE + file_name]
        url = AS_PRIMARY.get(file_name, mirrors[0])
        entries.append(dict(
            name=name, aliases=[file_name], architecture="mel_band_roformer" if name.startswith("mel") else "bs_roformer",
            variant=None, authors=authors, stems=stems, purpose=purpose, size=None, sha256=None,
            url=url, mirrors=[m for m in mirrors if m != url],
            config_urls=[AS_RELEASE + config_name, UVR_CONFIGS + config_name],
            description=title.split(":", 1)[1].strip(), source="audio-separator 0.47.1",
        ))
    return entries


def msst_entries() -> List[Dict[str, Any]]:
    entries = []
    for fields in MSST:
        file_name = fields["url"].rsplit("/", 1)[-1]
        entry = dict(aliases=[], variant=None, purpose="separation", size=None, sha256=None, mirrors=[], source="MSST ccc011a")
        entry.update(fields)
        entry["aliases"] = _unique(entry["aliases"] + [file_name], entry["name"])
        entries.append(entry)
    return entries


def build() -> List[Dict[str, Any]]:
    ZOO_CONFIGS.mkdir(parents=True, exist_ok=True)
    for old in ZOO_CONFIGS.glob("*.yaml"):
        old.unlink()
    as_names = {next(iter(files)) for files in json.loads((AUDIO_SEPARATOR / "models.json").read_text())["roformer_download_list"].values()}
    entries = splifft_entries(as_names)
    taken = {alias for entry in entries for alias in entry["aliases"]}
    entries += audio_separator_entries(taken) + msst_entries()
    _check(entries)
    classic = [fields["name"] for fields in CLASSIC.values()] + [MSST[0]["name"]]
    return sorted(entries, key=lambda entry: (entry["name"] not in classic, classic.index(entry["name"]) if entry["name"] in classic else 0, entry["name"]))


def presets(entries: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """audio-separator's ensemble presets whose models are all in the registry, whose rule is one of ours
    and whose models share a stem name (what an ensemble combines)."""
    by_name = {alias: entry for entry in entries for alias in [entry["name"], *entry["aliases"]]}
    chosen = {}
    for key, preset in json.loads((AUDIO_SEPARATOR / "ensemble_presets.json").read_text())["presets"].items():
        members = [by_name.get(model) for model in preset["models"]]
        if None in members or preset["algorithm"] not in ALGORITHMS:
            print(f"preset {key} left out: {preset['algorithm']} or a model we do not have ({preset['models']})")
            continue
        shared = set.intersection(*(set(member["stems"]) for member in members))
        if not shared:
            print(f"preset {key} left out: its models share no stem name ({[member['stems'] for member in members]})")
            continue
        chosen[key] = dict(models=[member["name"] for member in members], ensemble=preset["algorithm"],
                           weights=preset["weights"], description=preset["description"])
    return chosen


def _check(entries: List[Dict[str, Any]]) -> None:
    names: Dict[str, str] = {}
    for entry in entries:
        for key in [entry["name"], *entry["aliases"]]:
            if key in names:
                raise SystemExit(f"{key} names both {names[key]} and {entry['name']}")
            names[key] = entry["name"]
    files = [entry["url"].rsplit("/", 1)[-1] for entry in entries]
    duplicates = {name for name in files if files.count(name) > 1}
    if duplicates:
        raise SystemExit(f"checkpoint file names used twice (the cache needs unique names): {sorted(duplicates)}")


def main() -> None:
    entries = build()
    DATA.parent.mkdir(parents=True, exist_ok=True)
    chosen = presets(entries)
    DATA.write_text(json.dumps({"version": 1, "models": entries, "presets": chosen}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    pinned = sum(1 for entry in entries if entry["sha256"])
    shipped = sum(1 for entry in entries if entry.get("config"))
    print(f"{len(entries)} entries ({pinned} with a pinned sha256, {shipped} with a shipped config), "
          f"{len(chosen)} ensemble presets -> {DATA.relative_to(ROOT)}")
    write_model_docs(ROOT)  # from the registry file just written


if __name__ == "__main__":
    main()
