from pathlib import Path

from setuptools import find_packages, setup

setup(
    # the import name is bs_roformer, as upstream's; sharing the distribution name makes pip replace an
    # installed upstream bs-roformer instead of writing a second package over the same files
    name="bs-roformer",
    version="0.1.0",
    description="Band-split RoPE transformers (BS-RoFormer, Mel-Band RoFormer) for music source separation, "
    "weight-compatible with the published checkpoints",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["bs_roformer", "bs_roformer.*"]),
    package_data={"bs_roformer": ["configs/*.yaml", "configs/zoo/*.yaml", "data/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        # the model core (bs_roformer.models, bs_roformer.modules) needs only these five
        "torch>=2.4",  # F.rms_norm
        "einops>=0.7",
        "beartype",
        # the rotation is computed from RotaryEmbedding.freqs, tested with the newest release of every
        # minor series in this range (tests/test_rotary.py)
        "rotary-embedding-torch>=0.3.6,<0.10",
        "librosa>=0.10",
        # separating files (bs_roformer.inference, the command line)
        "numpy",
        "soundfile>=0.12",
        "soxr>=0.3",
        "tqdm",
        "pyyaml",
        "safetensors",
    ],
    entry_points={"console_scripts": ["bs-roformer=bs_roformer.cli:main"]},
    extras_require={
        # packaging: imported by the reference implementations the parity tests install
        "test": ["pytest>=7", "packaging"],
        "diagram": ["matplotlib"],
        # ONNX export (torch's dynamo exporter needs onnxscript) and the onnxruntime backend
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
    },
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Analysis",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
