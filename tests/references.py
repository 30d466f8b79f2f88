"""The reference implementations the parity tests compare against, installed from PyPI.

upstream bs-roformer 0.5.1 shares our import name, and audio-separator's Roformer copy needs the 0.6.x
rotary-embedding-torch while we run with whatever release setup.py admits. So each reference is installed
with `pip install --no-deps --target <cache>/<name>-<version>` and imported with its top-level names
swapped into `sys.modules` only for the duration of the import; afterwards our own packages are back in
place and the reference classes keep working through the module objects they closed over.

The cache is ~/.cache/bs_roformer-test-references (or $BS_ROFORMER_REFERENCE_DIR).
"""

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, Sequence

import numpy as np

UPSTREAM_VERSION = "0.5.1"
AUDIO_SEPARATOR_VERSION = "0.47.1"
# the rotary-embedding-torch series audio-separator pins; its rotary helper reads this series' cache
AUDIO_SEPARATOR_ROTARY_VERSION = "0.6.5"

CACHE = Path(os.environ.get("BS_ROFORMER_REFERENCE_DIR", Path.home() / ".cache" / "bs_roformer-test-references"))


def install(package: str, version: str) -> Path:
    """Install package==version (without dependencies) into its own cache folder, once."""
    target = CACHE / f"{package}-{version}"
    if (target / ".complete").exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
    subprocess.run([*command, "--target", str(partial), f"{package}=={version}"], check=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".complete").touch()
    return target


@contextlib.contextmanager
def swapped_modules(top_level_names: Sequence[str], paths: Sequence[Path]) -> Iterator[None]:
    """Import `top_level_names` from `paths` inside the block; restore sys.modules and sys.path after."""

    def owned(module_name: str) -> bool:
        return any(module_name == name or module_name.startswith(name + ".") for name in top_level_names)

    saved: Dict[str, types.ModuleType] = {name: sys.modules.pop(name) for name in list(sys.modules) if owned(name)}
    saved_path = list(sys.path)
    sys.path[:0] = [str(path) for path in paths]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for name in [name for name in sys.modules if owned(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
        sys.path[:] = saved_path
        importlib.invalidate_caches()


def _classes(module_prefix: str) -> types.SimpleNamespace:
    bs = importlib.import_module(f"{module_prefix}.bs_roformer")
    mel = importlib.import_module(f"{module_prefix}.mel_band_roformer")
    return types.SimpleNamespace(BSRoformer=bs.BSRoformer, MelBandRoformer=mel.MelBandRoformer, bs_module=bs)


@lru_cache(maxsize=None)
def upstream() -> types.SimpleNamespace:
    """lucidrains bs-roformer 0.5.1: BSRoformer (with value residual) and MelBandRoformer."""
    path = install("bs-roformer", UPSTREAM_VERSION)
    with swapped_modules(["bs_roformer"], [path]):
        return _classes("bs_roformer")


@lru_cache(maxsize=None)
def audio_separator() -> types.SimpleNamespace:
    """audio-separator 0.47.1's copy of the Music-Source-Separation-Training Roformers."""
    rotary_path = install("rotary-embedding-torch", AUDIO_SEPARATOR_ROTARY_VERSION)
    separator_path = install("audio-separator", AUDIO_SEPARATOR_VERSION)
    with swapped_modules(["rotary_embedding_torch", "audio_separator"], [rotary_path, separator_path]):
        # audio_separator/separator/__init__.py imports onnxruntime; the model files need none of it
        stub = types.ModuleType("audio_separator.separator")
        stub.__path__ = [str(separator_path / "audio_separator" / "separator")]
        importlib.import_module("audio_separator")
        sys.modules["audio_separator.separator"] = stub
        namespace = _classes("audio_separator.separator.uvr_lib_v5.roformer")
        rotary = importlib.import_module("rotary_embedding_torch")
        if not rotary.__file__.startswith(str(rotary_path)):
            raise RuntimeError(f"audio-separator's oracle picked up {rotary.__file__}, not rotary-embedding-torch 0.6.5")
        return namespace


@lru_cache(maxsize=None)
def rotary_embedding_release(version: str) -> types.ModuleType:
    """rotary_embedding_torch of a given release, imported under its own name only while loading."""
    path = install("rotary-embedding-torch", version)
    with swapped_modules(["rotary_embedding_torch"], [path]):
        return importlib.import_module("rotary_embedding_torch")


SPLIFFT_VERSION = "0.0.9"


@contextlib.contextmanager
def splifft_bs_roformer() -> Iterator[types.ModuleType]:
    """splifft 0.0.9's `splifft.models.bs_roformer` (BSRoformer, BSRoformerParams, the mask-estimator configs).

    Its constructors import submodules (attention, HyperACE) when called, so build the models inside the
    block; they run without it afterwards. splifft's package imports need only torch and einops.
    """
    with swapped_modules(["splifft"], [install("splifft", SPLIFFT_VERSION)]):
        yield importlib.import_module("splifft.models.bs_roformer")


MUSEVAL_VERSION = "0.4.1"


@lru_cache(maxsize=None)
def museval_metrics() -> types.ModuleType:
    """museval's BSSEval v4 code (museval/metrics.py, numpy + scipy only), from an installed museval 0.4.1 or
    else installed into the cache. museval's package __init__ imports musdb and stempeg, and stempeg raises
    at import without the ffmpeg binaries, so the metrics file is loaded on its own."""
    spec = importlib.util.find_spec("museval")  # finds the package without running its __init__
    if spec is not None and importlib.metadata.version("museval") == MUSEVAL_VERSION:
        path = Path(spec.submodule_search_locations[0]) / "metrics.py"
    else:
        path = install("museval", MUSEVAL_VERSION) / "museval" / "metrics.py"
    spec = importlib.util.spec_from_file_location("museval_reference_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def museval_chunk_sdr(reference, estimate, window: int = 44100, hop: int = 44100):
    """(stems, channels, t) numpy -> (stems, frames) SDR, exactly as museval.evaluate(win=window, hop=hop, mode='v4')."""
    references, estimates = reference.transpose(0, 2, 1), estimate.transpose(0, 2, 1)
    # museval.evaluate's padding: the estimate cut or zero-padded to the reference's length
    estimates = estimates[:, : references.shape[1]]
    estimates = np.pad(estimates, ((0, 0), (0, references.shape[1] - estimates.shape[1]), (0, 0)))
    sdr, *_ = museval_metrics().bss_eval(
        references, estimates, window=window, hop=hop, compute_permutation=False,
        framewise_filters=False, bsseval_sources_version=False,
    )
    return sdr


# Music-Source-Separation-Training at commit ccc011a (not on PyPI): its model files, read-only, beside the project
MSST_FOLDER_NAME = "msst-ccc011a"
# what MSST's PoPE attention imports (pope-pytorch, and its own imports einx and torch-einops-utils)
POPE_PACKAGES = (("pope-pytorch", "0.2.1"), ("einx", "0.4.3"), ("frozendict", "2.4.6"), ("torch-einops-utils", "0.2.0"))


def msst_folder() -> Path:
    """The shared MSST copy: ../shared/references/msst-ccc011a beside the project, else /work/shared/references."""
    for base in (Path(__file__).resolve().parents[1].parent / "shared" / "references", Path("/work/shared/references")):
        if (base / MSST_FOLDER_NAME / "models" / "bs_roformer").is_dir():
            return base / MSST_FOLDER_NAME
    import pytest

    pytest.skip(f"the Music-Source-Separation-Training reference files ({MSST_FOLDER_NAME}) are not beside the project")


@lru_cache(maxsize=None)
def msst_bs_roformer_family() -> types.SimpleNamespace:
    """MSST's bs_roformer.py (with PoPE), bs_conformer.py and mel_band_conformer.py modules."""
    folder = msst_folder()
    paths = [folder, *(install(package, version) for package, version in POPE_PACKAGES)]
    with swapped_modules(["models", "PoPE_pytorch", "einx", "frozendict", "torch_einops_utils"], paths):
        modules = {name: importlib.import_module(f"models.bs_roformer.{name}") for name in ("bs_roformer", "bs_conformer", "mel_band_conformer")}
    if not modules["bs_roformer"]._HAS_POPE:
        raise RuntimeError("MSST's bs_roformer.py did not find PoPE_pytorch")
    return types.SimpleNamespace(**modules)
