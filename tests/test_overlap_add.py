"""Chunked overlap-add: exact for an identity model at any length, batch and block size; identical to a
plain whole-signal implementation; smooth at chunk borders; free of the two known bugs."""

import pytest
import torch
import torch.nn.functional as F

from bs_roformer.inference.overlap_add import ChunkLayout, overlap_add
from bs_roformer.inference.streams import gather, split

LAYOUTS = [(100, 2), (100, 4), (64, 1), (97, 3)]
LENGTHS = [1, 5, 40, 63, 64, 65, 66, 99, 100, 101, 250, 1003]


def identity(chunks):
    return chunks[:, None]


def nonlinear(chunks):
    """Depends on the whole chunk, so every chunk's content and weight matter."""
    return (chunks * chunks.mean(dim=-1, keepdim=True) * 10 + chunks.std(dim=-1, keepdim=True))[:, None]


def whole_signal_reference(x, separate, layout):
    """The same weighting computed on the whole padded signal at once."""
    chunk, step, pad = layout.chunk_size, layout.step, layout.pad
    length = x.shape[-1]
    padded = F.pad(x[None], (pad, pad), mode="reflect")[0] if length > pad and pad else F.pad(x, (pad, pad))
    count = layout.num_chunks(length)
    padded = F.pad(padded, (0, (count - 1) * step + chunk - padded.shape[-1]))
    out, weight = torch.zeros(1, *padded.shape), torch.zeros(padded.shape[-1])
    for index in range(count):
        start = index * step
        window = layout.window(first=index == 0, last=start + chunk >= length + 2 * pad)
        out[..., start : start + chunk] += separate(padded[None, :, start : start + chunk])[0] * window
        weight[start : start + chunk] += window
    return (out / weight)[..., pad : pad + length]


@pytest.mark.parametrize("chunk, num_overlap", LAYOUTS)
@pytest.mark.parametrize("length", LENGTHS)
def test_identity_is_exact_and_streaming_matches_whole_signal(chunk, num_overlap, length):
    layout = ChunkLayout.from_overlap(chunk, num_overlap)
    x = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    expected = whole_signal_reference(x, nonlinear, layout)
    for batch_size in (1, 3):
        for block in (7, 64, 100_000):
            out = gather(overlap_add(split(x, block), identity, layout, batch_size))
            assert out.shape == (1, 2, length)
            assert (out[0] - x).abs().max() <= 1e-6 * x.abs().max()
            out = gather(overlap_add(split(x, block), nonlinear, layout, batch_size))
            assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_windows_are_fresh_for_every_chunk():
    """Known bug 1: a cached window modified in place gave later chunks hard edges."""
    layout = ChunkLayout.from_overlap(100, 2)
    first = layout.window(first=True, last=False)
    first[:] = 7
    middle = layout.window(first=False, last=False)
    assert middle[0] < 0.2 and middle[-1] < 0.2 and middle[50] == 1


@pytest.mark.parametrize("batch_size", [1, 2, 4, 8])
def test_first_and_last_are_decided_per_chunk(batch_size):
    """Known bug 2: deciding first/last per batch zero-weighted sample 0 of short tracks (NaN -> silently 0)."""
    layout = ChunkLayout.from_overlap(100, 2)
    x = torch.randn(1, 90) + 1.0
    out = gather(overlap_add(split(x, 1000), identity, layout, batch_size))
    assert torch.isfinite(out).all()
    assert (out[0] - x).abs().max() < 1e-6


def test_no_clicks_at_chunk_borders():
    """Chunks that disagree (a different offset each) are cross-faded, never switched abruptly."""
    layout = ChunkLayout.from_overlap(1000, 2)
    offsets = iter(torch.linspace(-1, 1, 50).tolist())

    def disagreeing(chunks):
        return torch.stack([chunk + next(offsets) for chunk in chunks])[:, None]

    x = torch.zeros(1, 8000)
    out = gather(overlap_add(split(x, 3000), disagreeing, layout, batch_size=2))[0, 0]
    neighbour_disagreement = 2 / 49
    # a switch would jump by the disagreement; a cross-fade moves by at most the disagreement of the chunks
    # on either side (two neighbours apart) divided by the fade length per sample
    assert out.diff().abs().max() <= 2 * neighbour_disagreement / layout.fade * 1.01
    assert out.diff().abs().max() < neighbour_disagreement / 20


def test_empty_stream_gives_nothing():
    assert list(overlap_add(iter([]), identity, ChunkLayout.from_overlap(100, 2))) == []


def test_invalid_layout():
    with pytest.raises(ValueError, match="must be positive"):
        ChunkLayout.from_overlap(100, 0)
