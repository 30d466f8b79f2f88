"""Build a small BS-RoFormer, take one training step, and separate a clip: the library in 30 lines."""

import torch

from bs_roformer import BSRoformer

model = BSRoformer(
    dim=64,
    depth=2,
    stereo=True,
    num_stems=2,
    time_transformer_depth=1,
    freq_transformer_depth=1,
    stft_hop_length=441,
)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)

mix = torch.randn(2, 2, 44100) * 0.1  # (batch, channels, samples): one second at 44.1 kHz
stems = torch.stack([mix * 0.6, mix * 0.4], dim=1)  # (batch, stems, channels, samples)

loss, (l1, multi_stft) = model(mix, target=stems, return_loss_breakdown=True)
loss.backward()
optimizer.step()
print(f"training loss {loss.item():.4f} (L1 {l1.item():.4f}, multi-resolution STFT {multi_stft.item():.4f})")

model.eval()
with torch.inference_mode():
    separated = model(mix)
print(f"separated {tuple(mix.shape)} into {tuple(separated.shape)}  (batch, stems, channels, samples)")
