"""Multi-stem datasets: layout checks, shapes, determinism across workers and resumption, augmentation, skipping."""

import warnings

import numpy as np
import pytest
import soundfile
import torch

from bs_roformer.training import FullTrackDataset, RandomChunkDataset, dataset_from_config, find_tracks, write_synthetic_dataset

STEMS = ["vocals", "drums", "bass", "other"]
RATE = 16000


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = write_synthetic_dataset(tmp_path_factory.mktemp("data") / "train", tracks=3, seconds=2.0, sample_rate=RATE)
    return find_tracks(root, STEMS, sample_rate=RATE)


@pytest.fixture(scope="module")
def ramps(tmp_path_factory):
    """Tracks whose samples say where they come from: track k, frame i holds k + 1 + i / 2**16 (left), its negative (right)."""
    root = tmp_path_factory.mktemp("ramps")
    for k, frames in enumerate((6000, 5000, 7000)):
        (root / f"ramp_{k}").mkdir()
        value = (k + 1 + np.arange(frames) / 2**16).astype(np.float32)
        for stem in STEMS:
            soundfile.write(str(root / f"ramp_{k}" / f"{stem}.wav"), np.stack([value, -value], axis=1), RATE, subtype="FLOAT")
    return find_tracks(root, STEMS)


def source_of(chunk):
    """(track index, start frame) of an unaugmented ramp chunk (channels, frames)."""
    first = float(chunk[0, 0])
    return int(first) - 1, round((first - int(first)) * 2**16)


def test_synthetic_dataset_layout_and_stems(tracks):
    assert [track.name for track in tracks] == ["track_000", "track_001", "track_002"]
    assert sorted(path.name for path in tracks[0].directory.iterdir()) == sorted(f"{name}.wav" for name in STEMS + ["mixture"])
    for track in tracks:
        assert (track.sample_rate, track.frames, track.channels) == (RATE, 2 * RATE, 2)
        audio = {stem: soundfile.read(str(track.stems[stem]), dtype="float32")[0] for stem in STEMS}
        mixture = soundfile.read(str(track.mixture), dtype="float32")[0]
        np.testing.assert_allclose(mixture, sum(audio.values()), atol=1e-6)
        assert 0.1 < np.abs(mixture).max() <= 0.9 + 1e-6
        assert all(not np.array_equal(samples[:, 0], samples[:, 1]) for samples in audio.values())  # stereo, not dual mono
        spectra = {stem: np.abs(np.fft.rfft(samples.mean(axis=1))) ** 2 for stem, samples in audio.items()}
        frequencies = np.fft.rfftfreq(2 * RATE, 1 / RATE)
        median = {stem: frequencies[np.searchsorted(np.cumsum(p) / p.sum(), 0.5)] for stem, p in spectra.items()}
        treble = {stem: p[frequencies > 4000].sum() / p.sum() for stem, p in spectra.items()}
        assert median["bass"] < 200 < median["other"] and max(treble, key=treble.get) == "drums"
        loudness = np.abs(audio["vocals"]).mean(axis=1).reshape(-1, 400).mean(axis=1)
        assert (loudness < 0.1 * loudness.max()).any()  # the voice pauses


def test_synthetic_dataset_is_seeded_per_stem(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", tracks=1, seconds=0.5, sample_rate=RATE)
    b = write_synthetic_dataset(tmp_path / "b", tracks=1, seconds=0.5, sample_rate=RATE, stems=("bass",), channels=1)
    c = write_synthetic_dataset(tmp_path / "c", tracks=1, seconds=0.5, sample_rate=RATE, seed=1)
    read = lambda root, stem: soundfile.read(str(root / "track_000" / f"{stem}.wav"), dtype="float32")[0]
    assert read(b, "bass").shape == (RATE // 2,) and not (b / "track_000" / "vocals.wav").exists()
    assert np.corrcoef(read(a, "bass").mean(axis=1), read(b, "bass"))[0, 1] > 0.9  # the same notes without the other stems
    assert not np.allclose(read(a, "bass"), read(c, "bass"))
    with pytest.raises(ValueError, match="no synthesiser for stems \\['guitar'\\]"):
        write_synthetic_dataset(tmp_path / "d", stems=("guitar",))


def test_items_are_shaped_mixtures_of_their_stems(tracks):
    for channels in (1, 2):
        dataset = RandomChunkDataset(tracks, STEMS, 4000, channels=channels, length=4)
        mixture, stems = dataset[3]
        assert mixture.shape == (channels, 4000) and stems.shape == (4, channels, 4000)
        assert mixture.dtype == stems.dtype == torch.float32
        assert torch.equal(mixture, stems.sum(dim=0))
    with pytest.raises(IndexError):
        dataset[4]


def test_items_depend_only_on_seed_epoch_and_index(tracks):
    dataset = RandomChunkDataset(tracks, STEMS, 2000, length=6, seed=7)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=workers)
        batches[workers] = list(loader)
    for (mixture_a, stems_a), (mixture_b, stems_b) in zip(batches[0], batches[2]):
        assert torch.equal(mixture_a, mixture_b) and torch.equal(stems_a, stems_b)
    # out of order, from a fresh copy: the same item
    again = RandomChunkDataset(tracks, STEMS, 2000, length=6, seed=7)
    assert torch.equal(again[4][1], batches[0][1][1][1]) and torch.equal(dataset[4][1], dataset[4][1])
    assert not torch.equal(RandomChunkDataset(tracks, STEMS, 2000, length=6, seed=8)[4][1], again[4][1])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[4][1], batches[0][1][1][1])
    dataset.set_epoch(0)
    assert torch.equal(dataset[4][1], batches[0][1][1][1])


def test_without_augmentation_a_chunk_is_the_files_samples(ramps):
    dataset = RandomChunkDataset(ramps, STEMS, 3000, length=8, mix_across_tracks=True)
    sources = set()
    for index in range(8):
        _, stems = dataset[index]
        for stem, chunk in zip(STEMS, stems):
            k, start = source_of(chunk)
            assert 0 <= start <= ramps[k].frames - 3000
            expected, _ = soundfile.read(str(ramps[k].stems[stem]), start=start, frames=3000, dtype="float32")
            assert np.array_equal(chunk.numpy(), expected.T)
            sources.add((k, start))
    assert len(sources) > 8 * 3  # stems of one item come from different tracks and offsets
    aligned = RandomChunkDataset(ramps, STEMS, 3000, length=8, mix_across_tracks=False)
    for index in range(8):
        assert len({source_of(chunk) for chunk in aligned[index][1]}) == 1


def test_short_tracks_are_zero_padded(ramps):
    _, stems = RandomChunkDataset(ramps[1:2], STEMS, 8000, length=1)[0]
    assert source_of(stems[0]) == (1, 0)
    assert stems[:, :, 5000:].abs().max() == 0 and stems[:, :, 4999].abs().min() > 0


def test_augmentation_changes_gain_polarity_and_channels(tracks):
    plain = RandomChunkDataset(tracks, STEMS, 3000, length=8)
    augmented = RandomChunkDataset(tracks, STEMS, 3000, length=8, gain_range=(0.5, 1.5), channel_swap_probability=1, polarity_flip_probability=1)
    ratios = []
    for index in range(8):
        a, b = plain[index][1], augmented[index][1]
        audible = a.abs().sum(dim=(1, 2)) > 0
        ratio = b.abs().sum(dim=(1, 2))[audible] / a.abs().sum(dim=(1, 2))[audible]
        assert ((ratio > 0.49) & (ratio < 1.51)).all()
        # every stem is flipped and channel-swapped: a negatively scaled, swapped copy of the same draw
        torch.testing.assert_close(b[audible].flip(1) / -ratio[:, None, None], a[audible], rtol=0, atol=1e-5)
        ratios += ratio.tolist()
    assert np.std(ratios) > 0.1


def test_mixup_layers_a_second_chunk_of_the_same_stem(ramps):
    def from_one_file(chunk):
        k, start = source_of(chunk)
        if not (0 <= k < len(ramps) and 0 <= start <= ramps[k].frames - chunk.shape[-1]):
            return False
        return np.array_equal(chunk[0].numpy(), (k + 1 + (start + np.arange(chunk.shape[-1])) / 2**16).astype(np.float32))

    dataset = RandomChunkDataset(ramps, STEMS, 1000, length=6, mixup_probabilities=(1.0,), mix_across_tracks=True)
    layered = 0
    for index in range(6):
        _, stems = dataset[index]
        # still a ramp of the same slope in both channels: the average of two chunks
        assert torch.equal(stems[:, 1], -stems[:, 0])
        torch.testing.assert_close(stems.diff(dim=2)[:, 0], torch.full((4, 999), 2.0**-16), rtol=0, atol=1e-6)
        layered += sum(not from_one_file(chunk) for chunk in stems)
    assert layered > 12
    _, single = RandomChunkDataset(ramps, STEMS, 1000, length=6, mix_across_tracks=True)[0]
    assert all(from_one_file(chunk) for chunk in single)
    with pytest.warns(UserWarning, match="not applied to aligned chunks"):
        _, aligned = RandomChunkDataset(ramps, STEMS, 1000, length=6, mixup_probabilities=(1.0,))[0]
    assert all(from_one_file(chunk) for chunk in aligned)


def test_stem_and_mono_drop_outs_silence_a_stem_or_one_of_its_channels(ramps):
    """frame-transformer's vocal-free items and mono drop-out; the drop-outs leave every other draw alone."""
    plain = RandomChunkDataset(ramps, STEMS, 1000, length=40)
    silenced = RandomChunkDataset(ramps, STEMS, 1000, length=40, stem_dropout_probabilities={"vocals": 0.5})
    mono = RandomChunkDataset(ramps, STEMS, 1000, length=40, mono_dropout_probabilities={"vocals": 1.0})
    silent_items, silent_channels = 0, set()
    for index in range(40):
        _, reference = plain[index]
        mixture, stems = silenced[index]
        assert torch.equal(stems[1:], reference[1:]) and torch.equal(mixture, stems.sum(dim=0))
        if stems[0].abs().sum() == 0:
            silent_items += 1
        else:
            assert torch.equal(stems[0], reference[0])
        _, stems = mono[index]
        assert torch.equal(stems[1:], reference[1:])
        kept = [channel for channel in (0, 1) if torch.equal(stems[0, channel], reference[0, channel])]
        assert len(kept) == 1 and stems[0, 1 - kept[0]].abs().sum() == 0
        silent_channels.add(1 - kept[0])
    assert 8 <= silent_items <= 32 and silent_channels == {0, 1}
    with pytest.raises(ValueError, match="name stems the dataset does not have: \\['voice'\\]"):
        RandomChunkDataset(ramps, STEMS, 1000, stem_dropout_probabilities={"voice": 0.1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        RandomChunkDataset(ramps, STEMS, 1000, mono_dropout_probabilities={"vocals": 1.5})


def test_quiet_chunks_are_drawn_again(tmp_path):
    root = write_synthetic_dataset(tmp_path / "train", tracks=2, seconds=2.0, sample_rate=RATE)
    for track_dir in root.iterdir():
        vocals, _ = soundfile.read(str(track_dir / "vocals.wav"), dtype="float32")
        vocals[:RATE] = 0  # silent first second
        soundfile.write(str(track_dir / "vocals.wav"), vocals, RATE, subtype="FLOAT")
    tracks = find_tracks(root, STEMS)
    for mix_across_tracks in (True, False):
        quiet = RandomChunkDataset(tracks, STEMS, 1600, length=30, min_mean_abs=1e-3, mix_across_tracks=mix_across_tracks)
        assert all((quiet[i][1].abs().mean(dim=(1, 2)) >= 1e-3).all() for i in range(30))
        anything = RandomChunkDataset(tracks, STEMS, 1600, length=30, mix_across_tracks=mix_across_tracks)
        assert any(anything[i][1][0].abs().mean() < 1e-3 for i in range(30))
    # a stem that is never loud enough is taken anyway after max_tries draws
    never = RandomChunkDataset(tracks, STEMS, 1600, length=1, min_mean_abs=10.0, max_tries=3)
    assert never[0][1].shape == (4, 2, 1600)


def test_full_tracks(tracks, ramps):
    name, mixture, stems = FullTrackDataset(tracks, ["vocals", "bass"], channels=1)[0]
    assert name == "track_000" and mixture.shape == (1, 2 * RATE) and stems.shape == (2, 1, 2 * RATE)
    stereo, _ = soundfile.read(str(tracks[0].mixture), dtype="float32")
    np.testing.assert_allclose(mixture[0].numpy(), stereo.mean(axis=1), atol=1e-7)  # from mixture.wav, downmixed
    # without mixture.wav: the sum of the stems
    name, mixture, stems = FullTrackDataset(ramps, STEMS)[2]
    assert name == "ramp_2" and mixture.shape == (2, 7000) and torch.equal(mixture, stems.sum(dim=0))
    with pytest.raises(ValueError, match="without these stems .*guitar"):
        FullTrackDataset(ramps, ["guitar"])


def test_clear_errors_for_broken_datasets(tmp_path):
    root = write_synthetic_dataset(tmp_path / "train", tracks=2, seconds=1.0, sample_rate=RATE)
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not tracks
    assert len(find_tracks(root, STEMS)) == 2
    with pytest.raises(FileNotFoundError, match="dataset folder not found: .*nothing"):
        find_tracks(tmp_path / "nothing", STEMS)
    with pytest.raises(ValueError, match="track 'train' .* has no vocals, drums, bass, other file .*; it holds \\[.*'track_000', 'track_001'\\]; pass the folder"):
        find_tracks(tmp_path, STEMS)  # the dataset root instead of its train/ split
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty has no track folders"):
        find_tracks(tmp_path / "empty", STEMS)
    with pytest.raises(ValueError, match="track 'track_000' .* has no guitar file .*; it holds \\['bass.wav', 'drums.wav', 'mixture.wav'"):
        find_tracks(root, ["vocals", "guitar"])
    with pytest.raises(ValueError, match="has no mixture file"):
        (root / "track_001" / "mixture.wav").rename(root / "track_001" / "mix.wav")
        find_tracks(root, STEMS, require_mixture=True)
    with pytest.raises(ValueError, match="is at 16000 Hz but the config expects 44100 Hz"):
        find_tracks(root, STEMS, sample_rate=44100)

    bass, _ = soundfile.read(str(root / "track_001" / "bass.wav"), dtype="float32")
    soundfile.write(str(root / "track_001" / "bass.wav"), bass[:100], RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match="track 'track_001': bass.wav has 100 samples at 16000 Hz, .* all stems of a track must match"):
        find_tracks(root, STEMS)
    soundfile.write(str(root / "track_001" / "bass.wav"), bass, 22050, subtype="FLOAT")
    with pytest.raises(ValueError, match="track 'track_001': bass.wav has 16000 samples at 22050 Hz, but vocals.wav has 16000 at 16000 Hz"):
        find_tracks(root, STEMS)
    (root / "track_001" / "bass.wav").write_bytes(b"RIFF not really")
    with pytest.raises(ValueError, match="track 'track_001': cannot read .*bass.wav"):
        find_tracks(root, STEMS)


def test_bad_dataset_arguments(ramps):
    with pytest.raises(ValueError, match="at least one track"):
        RandomChunkDataset([], STEMS, 100)
    with pytest.raises(ValueError, match="ramp_0: guitar"):
        RandomChunkDataset(ramps, ["guitar"], 100)
    with pytest.raises(ValueError, match="channels 1 or 2"):
        RandomChunkDataset(ramps, STEMS, 100, channels=3)
    with pytest.raises(ValueError, match="gain_range"):
        RandomChunkDataset(ramps, STEMS, 100, gain_range=(1.5, 0.5))


def test_dataset_from_an_msst_config(tracks):
    root = tracks[0].directory.parent
    config = {"audio": {"chunk_size": 2048, "sample_rate": RATE, "num_channels": 1, "min_mean_abs": 0.001},
              "training": {"instruments": ["vocals", "other"], "num_steps": 5, "batch_size": 3, "remix_stems": True},
              "augmentations": {"enable": True, "loudness": True, "loudness_min": 0.8, "loudness_max": 1.2,
                                "mixup": True, "mixup_probs": (0.3,), "all": {"channel_shuffle": 0.25, "random_polarity": 0.1}}}
    dataset = dataset_from_config(config, root, seed=3)
    assert len(dataset) == 15 and dataset.seed == 3 and dataset.stems == ["vocals", "other"] and dataset.chunk_size == 2048
    assert dataset.gain_range == (0.8, 1.2) and dataset.min_mean_abs == 0.001 and dataset.mixup_probabilities == (0.3,)
    assert (dataset.channel_swap_probability, dataset.polarity_flip_probability) == (0.25, 0.1)
    mixture, stems = dataset[0]
    assert mixture.shape == (1, 2048) and stems.shape == (2, 1, 2048)
    assert len(dataset_from_config(config, root, length=7)) == 7
    with pytest.warns(UserWarning, match="mixup .* not applied to aligned chunks: set training.remix_stems: true"):
        dataset_from_config(config, root, mix_across_tracks=False)

    off = dataset_from_config({**config, "augmentations": {**config["augmentations"], "enable": False}}, root)
    assert off.gain_range is None and off.channel_swap_probability == off.polarity_flip_probability == 0 and off.mixup_probabilities == ()
    # COMPAT (MSST): no section, or a section that switches nothing on, augments nothing
    for augmentations in (None, {"enable": True}, {"enable": True, "all": {}}):
        default = dataset_from_config({**{key: config[key] for key in ("audio", "training")}, "augmentations": augmentations}, root)
        assert default.gain_range is None and default.channel_swap_probability == default.polarity_flip_probability == 0
        assert default.mixup_probabilities == ()
    # a section without `enable` counts as enabled (MSST needs the key); loudness without a range is MSST's usual 0.5..1.5
    assert dataset_from_config({**config, "augmentations": {"loudness": True}}, root).gain_range == (0.5, 1.5)
    with pytest.warns(UserWarning, match="not applied .*all.pitch_shift, vocals.tanh_distortion"):
        dataset_from_config({**config, "augmentations": {"all": {"pitch_shift": 0.1, "pitch_shift_min_semitones": -2},
                                                         "vocals": {"tanh_distortion": 0.2}}}, root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset_from_config({**config, "augmentations": {"all": {"pitch_shift": 0}}}, root)
        # frame-transformer's drop-outs: a stem's own section wins over `all`
        dropping = dataset_from_config({**config, "augmentations": {"all": {"mono_dropout": 0.1, "stem_dropout": 0.2},
                                                                    "vocals": {"stem_dropout": 0.025}}}, root)
    assert dropping.stem_dropout_probabilities == {"vocals": 0.025, "other": 0.2}
    assert dropping.mono_dropout_probabilities == {"vocals": 0.1, "other": 0.1}
    assert off.stem_dropout_probabilities == off.mono_dropout_probabilities == {}

    with pytest.raises(ValueError, match="set training.instruments"):
        dataset_from_config({"audio": {"chunk_size": 10}, "training": {}}, root)
    with pytest.raises(ValueError, match="audio.chunk_size"):
        dataset_from_config({"audio": {}, "training": {"instruments": ["vocals"]}}, root)
    with pytest.raises(ValueError, match="but the config expects 44100 Hz"):
        dataset_from_config({**config, "audio": {"chunk_size": 10}}, root)
