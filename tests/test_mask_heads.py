"""The published mask-head variants (unwa's HyperACE v1 / v2 and Large-Inst v2 axial refiner) against their
reference, splifft 0.0.9 (installed like the other references, see references.py): the same state-dict keys
in the same order and shapes, the same separated audio, the same loss and gradients; recognition of the
heads from bare checkpoints, and clear errors for heads we do not have (unwa's Inst-FNO, unknown ones)."""

import json

import pytest
import torch
from einops import rearrange

import references
from bs_roformer import BSRoformer, MelBandRoformer, load_model
from bs_roformer.inference.checkpoint import infer_config
from bs_roformer.inference.loading import load_weights
from helpers import assert_relative_close, make_audio, perturb_

# 16 bands over a 256-point STFT: the HyperACE v2 backbone quarters the bands of its last maps, and with
# fewer bands their instance norms over one or two pixels turn float32 rounding into noise
BANDS = (8,) * 15 + (9,)
FRAMES = 17
HOP = 64
LENGTH = HOP * (FRAMES - 1)  # splifft's refiner rotary is built for exactly chunk_size // hop + 1 frames
OURS = dict(
    dim=32, depth=1, heads=2, dim_head=16, time_transformer_depth=1, freq_transformer_depth=1, stereo=True,
    freqs_per_bands=BANDS, stft_n_fft=256, stft_hop_length=HOP, stft_win_length=256,
    zero_dc=False, loss="t",  # splifft has no DC zeroing; its loss is not part of the model
)
VARIANTS = {
    # name: (mask_estimator setting, stems)
    "hyperace_v1": (dict(kind="hyperace_residual_v1"), 1),
    "hyperace_v2": (dict(kind="hyperace_residual_v2"), 1),
    "hyperace_v1_8_hyperedges_4_heads": (dict(kind="hyperace_residual_v1", num_hyperedges=8, num_heads=4), 1),
    "axial_refiner_large_v2": (dict(kind="axial_refiner_large_v2", axial_refiner_depth=2), 2),
}
PUBLISHED = ["hyperace_v1", "hyperace_v2", "axial_refiner_large_v2"]


def splifft_model(mask_estimator: dict, stems: int, mask_estimator_depth: int = 2):
    """splifft's BSRoformer (spectrogram in, mask out) of the same size as OURS."""
    options = dict(mask_estimator)
    kind = options.pop("kind")
    with references.splifft_bs_roformer() as splifft:
        head_config = {
            "hyperace_residual_v1": splifft.HyperAceResidualV1MaskEstimatorConfig,
            "hyperace_residual_v2": splifft.HyperAceResidualV2MaskEstimatorConfig,
            "axial_refiner_large_v2": splifft.AxialRefinerLargeV2MaskEstimatorConfig,
        }[kind](kind=kind, **options)
        params = splifft.BSRoformerParams(
            chunk_size=LENGTH, output_stem_names=tuple(f"stem{i}" for i in range(stems)), dim=OURS["dim"],
            depth=OURS["depth"], band_config=splifft.FixedBandsConfig(kind="fixed", freqs_per_bands=BANDS),
            stft_hop_length=HOP, stereo=True, heads=OURS["heads"], dim_head=OURS["dim_head"],
            mask_estimator_depth=mask_estimator_depth, mask_estimator=head_config,
        )
        return splifft.BSRoformer(params)


def splifft_separate(reference, audio: torch.Tensor) -> torch.Tensor:
    """(b, s, t) -> (b, n, s, t): STFT, splifft's complex mask, iSTFT (splifft leaves the transforms to its caller)."""
    batch, channels, length = audio.shape
    window = torch.hann_window(256).to(audio.dtype)  # as our STFT builds it: HyperACE amplifies even 1e-8
    spec = torch.stft(audio.reshape(batch * channels, length), 256, HOP, window=window, return_complex=True)
    spec = rearrange(torch.view_as_real(spec), "(b s) f t c -> b (f s) t c", s=channels)
    masks = torch.view_as_complex(reference(spec).contiguous())  # (b, n, (f s), t)
    stems = rearrange(torch.view_as_complex(spec)[:, None] * masks, "b n (f s) t -> (b n s) f t", s=channels)
    audio_out = torch.istft(stems, 256, HOP, window=window, length=length)
    return rearrange(audio_out, "(b n s) t -> b n s t", b=batch, s=channels)


def build_pair(variant: str):
    mask_estimator, stems = VARIANTS[variant]
    torch.manual_seed(0)
    reference = perturb_(splifft_model(mask_estimator, stems))
    ours = BSRoformer(**OURS, num_stems=stems, mask_estimator=mask_estimator)
    load_weights(ours, reference.state_dict())  # strict; rotary constants (not in splifft's keys) from the model
    return reference, ours


def without_rotary(state_dict) -> list:
    # splifft builds its rotary tables as plain attributes; MSST-trained checkpoints store `rotary_embed.freqs`
    return [(key, tuple(value.shape)) for key, value in state_dict.items() if not key.endswith("rotary_embed.freqs")]


def gradients(model, like) -> torch.Tensor:
    """The gradients of model's trainable parameters, flattened in the order of `like`'s parameters."""
    named = dict(model.named_parameters())
    grads = [named[name].grad for name, parameter in like.named_parameters() if parameter.requires_grad]
    assert all(grad is not None for grad in grads)
    return torch.cat([grad.flatten() for grad in grads])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_head_matches_splifft_in_float32(variant):
    """The same features into both heads: outputs, parameter and feature gradients within 1e-4."""
    reference, ours = build_pair(variant)
    reference_head, head = reference.mask_estimators[0], ours.mask_estimators[0]
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, FRAMES, len(BANDS), OURS["dim"], generator=generator)
    reference_features, our_features = features.clone().requires_grad_(), features.clone().requires_grad_()
    expected, output = reference_head(reference_features), head(our_features)
    assert_relative_close(f"{variant}: head output", output, expected)

    weights = torch.randn(expected.shape, generator=generator)
    (expected * weights).sum().backward()
    (output * weights).sum().backward()
    assert_relative_close(f"{variant}: head gradients", gradients(head, head), gradients(reference_head, head))
    assert_relative_close(f"{variant}: head feature gradients", our_features.grad, reference_features.grad)
    segment_or_refiner = [p.grad for name, p in head.named_parameters() if name.startswith(("segm.", "layers.0.0."))]
    assert segment_or_refiner and all(grad.abs().sum() > 0 for grad in segment_or_refiner if grad is not None)


# HyperACE in float64: at random weights the reference itself turns a 1e-6 relative change of its input
# features into ~1e-4 (v1) to ~1e-3 (v2) at its output (chains of instance norms over maps of a few pixels),
# so float32 rounding in the backbone would drown the comparison (the head's float32 accuracy is the test
# above). Rotary tables stay float32 on both sides, computed differently, which v2 amplifies to ~2e-5.
WHOLE_MODEL_DTYPE = dict(hyperace_v1=torch.float64, hyperace_v2=torch.float64, axial_refiner_large_v2=torch.float32)


@pytest.mark.parametrize("variant", PUBLISHED)
def test_model_matches_splifft(variant):
    """Keys, separated audio, loss and every gradient of the whole model, within 1e-4."""
    reference, ours = build_pair(variant)
    assert without_rotary(ours.state_dict()) == without_rotary(reference.state_dict())
    dtype = WHOLE_MODEL_DTYPE[variant]
    reference.to(dtype), ours.to(dtype)
    audio = make_audio(1, 2, LENGTH, seed=1).to(dtype)

    reference.eval(), ours.eval()
    with torch.no_grad():
        expected = splifft_separate(reference, audio)
        output = ours(audio)
    assert_relative_close(f"{variant}: output ({dtype})", output.reshape(expected.shape), expected)

    reference.train(), ours.train()
    target = make_audio(1, 2 * ours.num_stems, LENGTH, seed=2).to(dtype).reshape(expected.shape)
    reference_loss = torch.nn.functional.l1_loss(splifft_separate(reference, audio), target)
    loss = ours(audio, target=target.reshape(output.shape))
    assert_relative_close(f"{variant}: loss ({dtype})", loss, reference_loss)
    reference_loss.backward()
    loss.backward()
    assert_relative_close(f"{variant}: gradients ({dtype})", gradients(ours, ours), gradients(reference, ours))


@pytest.mark.parametrize("variant", PUBLISHED)
def test_bare_checkpoint_is_recognised_and_loads(variant, tmp_path):
    reference, ours = build_pair(variant)
    model_type, kwargs, notes = infer_config(reference.state_dict())
    spec, _ = VARIANTS[variant]
    expected = dict(spec)
    if spec["kind"].startswith("hyperace"):
        expected["num_hyperedges"] = 16 if spec["kind"].endswith("v1") else 32
    assert (model_type, kwargs["mask_estimator"], kwargs["zero_dc"]) == ("bs_roformer", expected, False)
    assert any("recognised by its keys" in note for note in notes)
    assert infer_config(ours.state_dict())[1]["mask_estimator"] == expected  # with rotary keys, as MSST saves

    path = tmp_path / "head.ckpt"
    torch.save(reference.state_dict(), path)
    loaded = load_model(path)
    audio = make_audio(1, 2, 4000, seed=3)
    ours.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(audio), ours(audio))


def test_config_section_builds_the_head_as_splifft_names_it():
    from bs_roformer.inference.config import model_from_config

    model = dict(OURS, num_stems=1, mask_estimator=dict(kind="hyperace_residual_v2", num_hyperedges=8))
    del model["loss"]
    network = model_from_config({"model": model, "training": {"model_type": "bs_roformer"}})
    prototypes = network.mask_estimators[0].segm.hyperace.high_order_branch[0].ahc.adaptive_hyperedge_gen.global_proto
    assert prototypes.shape == (8, 256)


def test_axial_refiner_on_mel_band_roformer():
    """The heads take any band-split model's features; overlapping mel bands only change the mask values."""
    model = MelBandRoformer(dim=32, depth=1, heads=2, dim_head=16, num_bands=8, stereo=True, stft_n_fft=256,
                            stft_hop_length=HOP, stft_win_length=256, mask_estimator="axial_refiner_large_v2")
    assert len(model.mask_estimators[0].layers) == 4  # splifft's default axial_refiner_depth
    model.eval()
    with torch.no_grad():
        assert model(make_audio(1, 2, LENGTH)).shape == (1, 2, LENGTH)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="kind 'hyperace_v3' is not known; choose one of baseline, hyperace_residual_v1"):
        BSRoformer(**OURS, mask_estimator="hyperace_v3")
    with pytest.raises(ValueError, match="takes no option axial_refiner_depth .its options: num_hyperedges, num_heads"):
        BSRoformer(**OURS, mask_estimator=dict(kind="hyperace_residual_v1", axial_refiner_depth=2))
    with pytest.raises(ValueError, match="use it with stereo=True"):
        BSRoformer(**dict(OURS, stereo=False), mask_estimator="hyperace_residual_v1")


def baseline_state_dict() -> dict:
    torch.manual_seed(0)
    return BSRoformer(**OURS).state_dict()


def test_fno_head_is_named_as_unsupported():
    # neuraloperator's FNO: fno_blocks (spectral convolutions), lifting and projection channel MLPs
    state_dict = {k: v for k, v in baseline_state_dict().items() if not k.startswith("mask_estimators.")}
    for index in range(16):
        prefix = f"mask_estimators.0.to_freqs.{index}.0"
        state_dict[f"{prefix}.fno_blocks.convs.0.weight"] = torch.zeros(4, 4, 8)
        state_dict[f"{prefix}.lifting.fcs.0.weight"] = torch.zeros(4, 32, 1)
        state_dict[f"{prefix}.projection.fcs.0.weight"] = torch.zeros(4, 4, 1)
    message = "Fourier neural operator weights .fno_blocks, lifting, projection.*Inst-FNO.*not supported"
    with pytest.raises(ValueError, match=message):
        infer_config(state_dict)


def test_unknown_head_names_its_families_and_the_nearest_known_head():
    state_dict = baseline_state_dict()
    state_dict["mask_estimators.0.refine.0.weight"] = torch.zeros(4, 4)
    state_dict["mask_estimators.0.segm.stem.weight"] = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r"mask_estimators\.N\.\{refine\}.*Nearest known head: hyperace_residual_v1"):
        infer_config(state_dict)


def test_msst_config_without_the_head_takes_it_from_the_checkpoint(tmp_path):
    """unwa's MSST configs describe a plain BS-RoFormer; his model file adds the head."""
    reference, ours = build_pair("axial_refiner_large_v2")
    model = {key: value for key, value in OURS.items() if key not in ("zero_dc", "loss")}
    config = dict(model=dict(model, num_stems=2), training=dict(model_type="bs_roformer"))
    path = tmp_path / "large_v2.ckpt"
    torch.save(reference.state_dict(), path)
    loaded = load_model(path, config=config)
    assert loaded.config["model"]["mask_estimator"] == dict(kind="axial_refiner_large_v2", axial_refiner_depth=2)
    assert any("recognised by its keys" in note for note in loaded.notes)
    assert loaded.config["model"]["zero_dc"] is False  # the head's convention, where the YAML is silent
    config["model"]["zero_dc"] = True
    assert load_model(path, config=config).config["model"]["zero_dc"] is True  # the YAML's own setting wins
    audio = make_audio(1, 2, 4000, seed=3)
    ours.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(audio), ours(audio))


@pytest.mark.parametrize("identifier", [
    "bs_roformer-unwa-hyperace_v1_instrum", "bs_roformer-unwa-hyperace_v2_instrum",
    "bs_roformer-unwa-hyperace_v2_vocals", "mel_roformer-unwa-large_inst_v2",
])
def test_published_configurations_give_the_published_file_sizes(identifier):
    """splifft's shipped config of each published checkpoint builds a model whose float32 weights, plus
    torch.save's few hundred bytes per tensor, are the size its registry gives for the checkpoint file."""
    data = references.install("splifft", references.SPLIFFT_VERSION) / "splifft" / "data"
    config = json.loads((data / "config" / f"{identifier}.json").read_text())["model"]
    size = json.loads((data / "registry.json").read_text())[identifier]["model_size"]
    assert config["band_config"] == {"kind": "fixed"} and "freqs_per_bands" not in config  # splifft's default bands
    model = BSRoformer(
        dim=config["dim"], depth=config["depth"], num_stems=len(config["output_stem_names"]), stereo=True,
        time_transformer_depth=1, freq_transformer_depth=1,  # splifft's defaults
        mask_estimator=config["mask_estimator"],
    )
    state = model.state_dict()
    overhead = (size - sum(t.numel() * 4 for t in state.values())) / len(state)
    assert 400 < overhead < 500, f"{identifier}: {overhead:.0f} bytes per tensor beyond the float32 weights"
