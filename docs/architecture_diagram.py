"""Draw bs-roformer.png, the architecture diagram in the README.

    pip install -e ".[diagram]" && python docs/architecture_diagram.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUTPUT = Path(__file__).resolve().parent.parent / "bs-roformer.png"

SHARED = "#dbe9f6"  # modules shared by every model
AXIAL = "#fde2c8"
DIFFERS = "#e4f2dc"  # where BS-RoFormer and Mel-Band RoFormer differ
IO = "#eeeeee"


def box(ax, x, y, width, height, title, detail="", color=SHARED):
    ax.add_patch(
        FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.02,rounding_size=0.12",
                       facecolor=color, edgecolor="#444444", linewidth=1.0)
    )
    if detail:
        ax.text(x, y + 0.13, title, ha="center", va="center", fontsize=10.5, fontweight="bold")
        ax.text(x, y - 0.17, detail, ha="center", va="center", fontsize=8.2, color="#333333")
    else:
        ax.text(x, y, title, ha="center", va="center", fontsize=10.5, fontweight="bold")


def arrow(ax, start, end, text=""):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#444444", linewidth=1.1))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, text, fontsize=7.8, color="#555555",
                va="center", ha="left", family="monospace")


def main_pipeline(ax):
    x, width, step = 3.2, 4.6, 1.05
    stages = [
        ("audio", "(b, s, t), s = 1 mono or 2 stereo", IO),
        ("STFT", "channels interleaved into frequency; optional freq_range", SHARED),
        ("band split", "per band: RMSNorm + Linear  ->  (b, frames, bands, dim)", DIFFERS),
        (None, None, None),  # axial transformer, drawn below
        ("mask estimators (one per stem)", "per band: MLP (tanh) + GLU  ->  complex mask", DIFFERS),
        ("bands -> bins", "BS: concatenate | Mel: average overlapping bands", DIFFERS),
        ("complex multiply with the mix spectrum", "real/imag pairs, any device", SHARED),
        ("iSTFT", "zero_dc: DC bin set to 0; length restored (MSST)", SHARED),
        ("stems", "(b, s, t) for one stem, (b, n, s, t) for n", IO),
    ]
    top = 10.6
    ys = [top - i * step for i in range(len(stages))]
    ys[3:] = [y - 1.9 for y in ys[3:]]
    for (title, detail, color), y in zip(stages, ys):
        if title is not None:
            box(ax, x, y, width, 0.72, title, detail, color)

    # axial transformer block
    axial_top, axial_bottom = ys[2] - 0.55, ys[4] + 0.55
    ax.add_patch(
        FancyBboxPatch((x - 2.55, axial_bottom), 5.1, axial_top - axial_bottom, boxstyle="round,pad=0.02,rounding_size=0.15",
                       facecolor="#fff7ef", edgecolor="#c07a30", linewidth=1.2, linestyle="--")
    )
    ax.text(x + 2.65, axial_top - 0.2, "x depth", ha="left", va="center", fontsize=9, color="#c07a30", fontweight="bold")
    inner = [
        ("linear transformer (optional)", "XCiT attention over all tokens"),
        ("time transformer", "each band attends across frames (RoPE)"),
        ("frequency transformer", "each frame attends across bands (RoPE)"),
    ]
    inner_ys = [axial_top - 0.55 - i * 0.85 for i in range(3)]
    for (title, detail), y in zip(inner, inner_ys):
        box(ax, x, y, 4.2, 0.62, title, detail, AXIAL)
    for a, b in zip(inner_ys[:-1], inner_ys[1:]):
        arrow(ax, (x, a - 0.33), (x, b + 0.33))

    arrow(ax, (x, ys[2] - 0.38), (x, inner_ys[0] + 0.33))
    arrow(ax, (x, inner_ys[-1] - 0.33), (x, ys[4] + 0.38))
    ax.text(x + 2.65, (axial_bottom + ys[4] + 0.38) / 2 + 0.15, "BS: one final RMSNorm\nMel: RMSNorm after\neach transformer",
            fontsize=7.8, color="#555555", va="center", ha="left")
    for a, b in [(0, 1), (1, 2), (4, 5), (5, 6), (6, 7), (7, 8)]:
        arrow(ax, (x, ys[a] - 0.38), (x, ys[b] + 0.38))
    # the mix spectrum feeds the masking step
    ax.add_patch(FancyArrowPatch((x - 2.35, ys[1]), (x - 2.35, ys[6]), connectionstyle="arc3,rad=0.25",
                                 arrowstyle="-|>", mutation_scale=12, color="#8a8a8a", linewidth=1.0, linestyle=":"))


def transformer_detail(ax):
    x, width = 9.0, 3.9
    ax.text(x, 10.95, "one transformer layer", ha="center", fontsize=11, fontweight="bold")
    blocks = [
        ("RMSNorm", ""),
        ("Linear -> q, k, v", "heads x dim_head"),
        ("value residual (optional)", "v <- lerp(v, v of first layer, sigmoid)"),
        ("rotary positions on q, k", "float32 angles"),
        ("scaled dot-product attention", "F.scaled_dot_product_attention"),
        ("sigmoid gate per head", ""),
        ("Linear out  + residual", ""),
        ("feed-forward  + residual", "RMSNorm, Linear x4, GELU, Linear"),
    ]
    ys = [10.35 - i * 0.98 for i in range(len(blocks))]
    for (title, detail), y in zip(blocks, ys):
        box(ax, x, y, width, 0.66, title, detail, AXIAL if "attention" in title or "rotary" in title else SHARED)
    for a, b in zip(ys[:-1], ys[1:]):
        arrow(ax, (x, a - 0.35), (x, b + 0.35))


def legend(ax):
    for i, (color, text) in enumerate([(SHARED, "shared module"), (AXIAL, "attention"), (DIFFERS, "band layout decides")]):
        ax.add_patch(FancyBboxPatch((7.15 + i * 1.62, 0.12), 0.3, 0.22, boxstyle="round,pad=0.01", facecolor=color, edgecolor="#444444"))
        ax.text(7.52 + i * 1.62, 0.23, text, fontsize=7.8, va="center")


def main():
    fig, ax = plt.subplots(figsize=(11.5, 11.6))
    ax.set_xlim(0, 11.3)
    ax.set_ylim(0, 11.4)
    ax.axis("off")
    main_pipeline(ax)
    transformer_detail(ax)
    legend(ax)
    ax.text(0.1, 11.25, "BS-RoFormer / Mel-Band RoFormer in bs_roformer", fontsize=13, fontweight="bold", va="center")
    fig.savefig(OUTPUT, dpi=110, bbox_inches="tight", facecolor="white")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
