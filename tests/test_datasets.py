"""Multi-stem datasets: layout checks, shapes, determinism across workers and resumption, augmentation, skipping."""

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


def test_synthetic_dataset_layout(tracks):
    assert [track.name for track in tracks] == ["track_000", "track_001", "track_002"]
    track = tracks[0]
    assert (track.sample_rate, track.frames, track.channels) == (RATE, 2 * RATE, 2)
    mixture = soundfile.read(str(track.mixture), dtype="float32")[0]
    stems = sum(soundfile.read(str(track.stems[stem]), dtype="float32")[0] for stem in STEMS)
    np.testing.assert_allclose(mixture, stems, atol=1e-6)


def test_items_are_shaped_mixtures_of_their_stems(tracks):
    dataset = RandomChunkDataset(tracks, STEMS, 4000, length=4)
    mixture, stems = dataset[3]
    assert mixture.shape == (2, 4000) and stems.shape == (4, 2, 4000) and mixture.dtype == torch.float32
    torch.testing.assert_close(mixture, stems.sum(dim=0))


def test_items_depend_only_on_seed_epoch_and_index(tracks):
    dataset = RandomChunkDataset(tracks, STEMS, 2000, length=6, seed=7)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=workers)
        batches[workers] = [stems for _, stems in loader]
    for a, b in zip(batches[0], batches[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(dataset[4][1], dataset[4][1])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[4][1], batches[0][1][1])


def test_without_augmentation_a_chunk_is_the_files_samples(tracks):
    dataset = RandomChunkDataset(tracks, STEMS, 3000, length=2, mix_across_tracks=False, gain_range=None,
                                 channel_swap_probability=0, polarity_flip_probability=0)
    _, stems = dataset[1]
    audio = {track.name: soundfile.read(str(track.stems["bass"]), dtype="float32")[0].T for track in tracks}
    matches = [name for name, samples in audio.items()
               for start in range(samples.shape[1] - 3000 + 1) if np.array_equal(samples[:, start:start + 3000], stems[2].numpy())]
    assert len(matches) >= 1


def test_augmentation_changes_gain_polarity_and_channels(tracks):
    plain = RandomChunkDataset(tracks, STEMS, 3000, length=8, gain_range=None, channel_swap_probability=0, polarity_flip_probability=0)
    augmented = RandomChunkDataset(tracks, STEMS, 3000, length=8, gain_range=(0.5, 1.5), channel_swap_probability=1, polarity_flip_probability=1)
    for index in range(8):
        a, b = plain[index][1], augmented[index][1]
        audible = a.abs().sum(dim=(1, 2)) > 0
        ratio = b.abs().sum(dim=(1, 2))[audible] / a.abs().sum(dim=(1, 2))[audible]
        assert ((ratio > 0.49) & (ratio < 1.51)).all()
        # every stem is flipped and channel-swapped: a negatively scaled, swapped copy
        torch.testing.assert_close(b[audible].flip(1) / -ratio[:, None, None], a[audible], rtol=0, atol=1e-5)


def test_quiet_chunks_are_drawn_again(tmp_path):
    root = write_synthetic_dataset(tmp_path / "train", tracks=2, seconds=2.0, sample_rate=RATE)
    for track_dir in root.iterdir():
        vocals, _ = soundfile.read(str(track_dir / "vocals.wav"), dtype="float32")
        vocals[: RATE] = 0  # silent first second
        soundfile.write(str(track_dir / "vocals.wav"), vocals, RATE, subtype="FLOAT")
    tracks = find_tracks(root, STEMS)
    quiet = RandomChunkDataset(tracks, STEMS, 1600, length=40, gain_range=None, min_mean_abs=1e-3)
    assert all(quiet[i][1][0].abs().mean() >= 1e-3 for i in range(40))
    anything = RandomChunkDataset(tracks, STEMS, 1600, length=40, gain_range=None, min_mean_abs=0.0)
    assert any(anything[i][1][0].abs().mean() < 1e-3 for i in range(40))


def test_full_tracks(tracks):
    dataset = FullTrackDataset(tracks, ["vocals", "bass"], channels=1)
    name, mixture, stems = dataset[0]
    assert name == "track_000" and mixture.shape == (1, 2 * RATE) and stems.shape == (2, 1, 2 * RATE)


def test_clear_errors_for_broken_datasets(tmp_path):
    root = write_synthetic_dataset(tmp_path / "train", tracks=2, seconds=1.0, sample_rate=RATE)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        find_tracks(tmp_path / "nothing", STEMS)
    with pytest.raises(ValueError, match="track 'track_000' .* has no guitar file; it holds"):
        find_tracks(root, ["vocals", "guitar"])
    with pytest.raises(ValueError, match="is at 16000 Hz but the config expects 44100 Hz"):
        find_tracks(root, STEMS, sample_rate=44100)
    short, _ = soundfile.read(str(root / "track_001" / "bass.wav"), dtype="float32")
    soundfile.write(str(root / "track_001" / "bass.wav"), short[:100], RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match="track 'track_001': bass.wav has 100 samples .* all stems of a track must match"):
        find_tracks(root, STEMS)


def test_dataset_from_an_msst_config(tracks):
    root = tracks[0].directory.parent
    config = {"audio": {"chunk_size": 2048, "sample_rate": RATE, "num_channels": 1, "min_mean_abs": 0.001},
              "training": {"instruments": ["vocals", "other"], "num_steps": 5, "batch_size": 3},
              "augmentations": {"enable": True, "loudness": True, "loudness_min": 0.8, "loudness_max": 1.2}}
    dataset = dataset_from_config(config, root, seed=3)
    assert len(dataset) == 15 and dataset.gain_range == (0.8, 1.2) and dataset.min_mean_abs == 0.001
    mixture, stems = dataset[0]
    assert mixture.shape == (1, 2048) and stems.shape == (2, 1, 2048)
    off = dataset_from_config({**config, "augmentations": {"enable": False}}, root)
    assert off.gain_range is None and off.channel_swap_probability == 0 and off.polarity_flip_probability == 0
    with pytest.raises(ValueError, match="set training.instruments"):
        dataset_from_config({"audio": {"chunk_size": 10}, "training": {}}, root)
