"""Well-known public checkpoints, the user cache they are downloaded to, and the download itself.

Each entry ships its config inside the package (`bs_roformer/configs/`), so a name is all a user types.
None of the publishers lists checksums, so a checkpoint's sha256 is recorded next to it on first download
and checked on every later load; an entry may also pin one.
"""

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from tqdm import tqdm

from ..atomic import atomic_path
from .config import read_config, stem_names

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CACHE_ENV = "BS_ROFORMER_CACHE"
DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    url: str
    config: str  # file name in bs_roformer/configs
    description: str
    sha256: Optional[str] = None
    aliases: Tuple[str, ...] = field(default=())

    @property
    def config_path(self) -> Path:
        return CONFIG_DIR / self.config

    @property
    def stems(self) -> Tuple[str, ...]:
        config = read_config(self.config_path)
        return tuple(stem_names(config, config["model"].get("num_stems", 1)))

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_TRVLVR = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"

REGISTRY: Dict[str, RegisteredModel] = {
    model.name: model
    for model in (
        RegisteredModel(
            name="model_bs_roformer_ep_17_sdr_9.6568",
            url="https://github.com/ZFTurbo/Music-Source-Separation-Training/releases/download/v1.0.12/"
            "model_bs_roformer_ep_17_sdr_9.6568.ckpt",
            config="config_bs_roformer_384_8_2_485100.yaml",
            description="ZFTurbo BS-RoFormer, 4 stems, trained on MUSDB18-HQ (MUSDB test SDR 9.65)",
            aliases=("bs_roformer_4stem", "default"),
        ),
        RegisteredModel(
            name="model_bs_roformer_ep_317_sdr_12.9755",
            url=_TRVLVR + "model_bs_roformer_ep_317_sdr_12.9755.ckpt",
            config="model_bs_roformer_ep_317_sdr_12.9755.yaml",
            description="viperx BS-RoFormer 1297, vocals",
            aliases=("viperx_bs_1297",),
        ),
        RegisteredModel(
            name="model_bs_roformer_ep_368_sdr_12.9628",
            url=_TRVLVR + "model_bs_roformer_ep_368_sdr_12.9628.ckpt",
            config="model_bs_roformer_ep_368_sdr_12.9628.yaml",
            description="viperx BS-RoFormer 1296, vocals",
            aliases=("viperx_bs_1296",),
        ),
        RegisteredModel(
            name="model_mel_band_roformer_ep_3005_sdr_11.4360",
            url=_TRVLVR + "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt",
            config="model_mel_band_roformer_ep_3005_sdr_11.4360.yaml",
            description="viperx Mel-Band RoFormer 1143, vocals",
            aliases=("viperx_mel_1143",),
        ),
        RegisteredModel(
            name="vocals_mel_band_roformer_kj",
            url="https://huggingface.co/KimberleyJSN/melbandroformer/resolve/main/MelBandRoformer.ckpt",
            config="config_vocals_mel_band_roformer_kj.yaml",
            description="Kimberley Jensen Mel-Band RoFormer, vocals",
            aliases=("kj_mel_vocals",),
        ),
        RegisteredModel(
            name="mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956",
            url="https://huggingface.co/jarredou/aufr33-viperx-karaoke-melroformer-model/resolve/main/"
            "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt",
            config="config_mel_band_roformer_karaoke.yaml",
            description="aufr33 & viperx Mel-Band RoFormer karaoke: lead vocals apart from the rest",
            aliases=("karaoke",),
        ),
    )
}
DEFAULT_MODEL = "model_bs_roformer_ep_17_sdr_9.6568"


def registered(name: str) -> Optional[RegisteredModel]:
    """The registry entry called `name` (or one of its aliases, or its checkpoint file name)."""
    for model in REGISTRY.values():
        if name in (model.name, model.file_name, *model.aliases):
            return model
    return None


def cache_dir(override=None) -> Path:
    """Where checkpoints are kept: the argument, else $BS_ROFORMER_CACHE, else ~/.cache/bs_roformer."""
    if override is not None:
        return Path(override)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bs_roformer"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(DOWNLOAD_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(model: RegisteredModel, directory=None, progress: bool = True) -> Path:
    """The checkpoint of a registry entry: downloaded once into the cache, verified on every call."""
    path = cache_dir(directory) / model.file_name
    recorded = path.with_name(path.name + ".sha256")
    fresh = not path.exists()
    if fresh:
        download(model.url, path, progress=progress)
    digest = sha256_of(path)
    expected = model.sha256 or (recorded.read_text().split()[0] if recorded.exists() else None)
    if expected is not None and digest != expected:
        if fresh:  # a bad download is not kept
            path.unlink()
            raise ValueError(f"the download of {model.url} has sha256 {digest}, expected {expected}")
        raise ValueError(
            f"{path} is corrupt or was replaced: its sha256 is {digest}, expected {expected}. "
            f"Delete it to download it again from {model.url}"
        )
    if expected is None:
        recorded.write_text(f"{digest}  {path.name}\n")
    return path


def download(url: str, destination: Path, progress: bool = True) -> Path:
    """Download to `destination` through a temporary file renamed when complete."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(destination) as partial:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as file:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name, disable=not progress) as bar:
                    for block in iter(lambda: response.read(DOWNLOAD_CHUNK), b""):
                        file.write(block)
                        bar.update(len(block))
            if total is not None and partial.stat().st_size != total:
                raise OSError(f"connection closed after {partial.stat().st_size} of {total} bytes")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConnectionError(
            f"could not download {url} ({reason}). Without network access, download it elsewhere and place "
            f"it at {destination}"
        ) from None
    return destination
