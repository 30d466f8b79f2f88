"""Draw docs/band-schemas.png: the band edges of every schema on a log-frequency axis (n_fft 2048, 44.1 kHz).

    pip install -e ".[diagram]" && python docs/band_schemas_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bs_roformer import band_schema  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "band-schemas.png"
N_FFT, SAMPLE_RATE = 2048, 44100
ROWS = [
    ("v7 (vocals, other)", "v7", {}),
    ("bass", "bass", {}),
    ("drums", "drums", {}),
    ("bs_roformer", "bs_roformer", {}),
    ("musical, 12 per octave", "musical", dict(divisions=12)),
    ("musical, 24 per octave", "musical", dict(divisions=24)),
    ("mel, 60 bands", "mel", dict(num_bands=60)),
]


def main() -> None:
    bin_hz = SAMPLE_RATE / N_FFT
    figure, ax = plt.subplots(figsize=(10, 4.2))
    for row, (label, name, options) in enumerate(ROWS):
        bands = band_schema(name, N_FFT, SAMPLE_RATE, **options)
        for index, band in enumerate(bands):
            # bin k covers [k - 1/2, k + 1/2) bins; the DC bin is drawn from 10 Hz so the log axis can show it
            low, high = max((band.start - 0.5) * bin_hz, 10), (band.stop - 0.5) * bin_hz
            height = 0.36 if name == "mel" else 0.7
            offset = (index % 2) * 0.36 - 0.18 if name == "mel" else 0
            ax.barh(row + offset, high - low, left=low, height=height, color=f"C{row}", alpha=0.55 + 0.25 * (index % 2),
                    edgecolor="white", linewidth=0.4)
        ax.text(SAMPLE_RATE / 2 * 1.08, row, f"{len(bands)} bands", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(10, SAMPLE_RATE / 2 * 1.6)
    ax.set_yticks(range(len(ROWS)), [label for label, _, _ in ROWS])
    ax.invert_yaxis()
    ax.set_xlabel(f"frequency (Hz), {N_FFT}-point STFT at {SAMPLE_RATE} Hz")
    ax.set_title("Band schemas (bs_roformer.band_schema): alternating shades mark consecutive bands")
    figure.tight_layout()
    figure.savefig(OUTPUT, dpi=130)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
