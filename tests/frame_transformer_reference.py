"""carperbr/frame-transformer at commit 90ab4e3, the oracle of the frame-transformer tests and bench.

Its files are not on PyPI; they sit read-only in the shared references folder next to the repository
(../shared/references/frame-transformer-90ab4e3, else /work/shared/references/...). They import their
own `rotary_embedding_torch.py` (a copy that differs from the package), `lib`, and, for the separation
script, `ffmpeg` and (through lib.utils) `cv2`, which are stubbed: only their file-output paths use them.
"""

import importlib
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import Optional

from references import swapped_modules

FOLDER = "frame-transformer-90ab4e3"
MODULES = ["rotary_embedding_torch", "multichannel_linear", "multichannel_layernorm", "frame_transformer_thin",
           "libft", "lib", "inference_thin2", "ffmpeg", "cv2"]


def reference_folder() -> Optional[Path]:
    for root in (Path(__file__).resolve().parents[1].parent / "shared" / "references", Path("/work/shared/references")):
        if (root / FOLDER / "frame_transformer_thin.py").is_file():
            return root / FOLDER
    return None


SKIP_REASON = (f"the frame-transformer reference files ({FOLDER}) are not in ../shared/references next to this "
               "repository (only the project's CI machine has them)")


@lru_cache(maxsize=None)
def frame_transformer() -> types.SimpleNamespace:
    """V1 (frame_transformer_thin.FrameTransformer), V3 (libft.frame_transformer.FrameTransformer), the
    separation script's Separator and lib.spec_utils."""
    folder = reference_folder()
    if folder is None:
        raise FileNotFoundError(SKIP_REASON)
    with swapped_modules(MODULES, [folder]):
        for stub in ("ffmpeg", "cv2"):
            sys.modules[stub] = types.ModuleType(stub)
        sys.modules["cv2"].IMREAD_COLOR = 1  # a default argument value in lib/utils.py
        v1 = importlib.import_module("frame_transformer_thin")
        v3 = importlib.import_module("libft.frame_transformer")
        inference = importlib.import_module("inference_thin2")
        return types.SimpleNamespace(
            V1=v1.FrameTransformer, V3=v3.FrameTransformer, Separator=inference.Separator,
            dataset=importlib.import_module("lib.dataset"),
        )
