"""Where inference time goes: torch.profiler's operator table for one configuration and precision, grouped.

    python bench/op_profile.py --config C --precision bf16       # shares of time by kind of work, then the top ops
    python bench/op_profile.py --config A --precision fp32 --top 40

Shares are of the profiled CPU time (self time of each operator), so they stay meaningful on a busy machine
where seconds do not. (Not named profile.py: bench/ is on sys.path for its scripts, and torch.export imports the
standard library's profile.) The groups: matrix multiplication, attention (SDPA kernels), dtype conversions and
copies, normalisation, other element-wise work, the STFT/iSTFT, and the rest.
"""

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the configurations and the step)

GROUPS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
    "attention (SDPA)": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math"),
    "dtype conversions, copies": ("aten::to", "aten::_to_copy", "aten::copy_", "aten::contiguous", "aten::clone", "aten::cat", "aten::stack"),
    "normalisation": ("aten::rms_norm", "aten::_fused_rms_norm", "aten::linalg_vector_norm", "aten::native_layer_norm"),
    "STFT / iSTFT": ("aten::stft", "aten::istft", "aten::_fft_r2c", "aten::_fft_c2r", "aten::_fft_c2c"),
    "element-wise": ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::sigmoid", "aten::gelu", "aten::tanh", "aten::glu",
                     "aten::lerp", "aten::mul_", "aten::add_", "aten::view_as_complex", "aten::view_as_real", "aten::polar"),
}


def group_of(name: str) -> str:
    return next((group for group, names in GROUPS.items() if name in names), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="C", choices=sorted(speed.CONFIGS))
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, kwargs, batch, samples, training = speed.CONFIGS[args.config]
    if training:
        raise SystemExit("profile an inference configuration (A, M or C)")
    torch.manual_seed(0)
    net = speed.build("ours", model, kwargs).eval()
    audio, _ = speed.inputs(batch, samples)
    speed.step(net, audio, None, False, args.precision)  # warm-up
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as profiler:
        speed.step(net, audio, None, False, args.precision)
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events)
    shares = defaultdict(float)
    for event in events:
        shares[group_of(event.key)] += event.self_cpu_time_total / total
    print(f"config {args.config}, {args.precision}: share of profiled CPU time (self time of each operator)")
    for group, share in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"  {group:28s}{share:7.1%}")
    print(f"\ntop {args.top} operators")
    for event in sorted(events, key=lambda event: -event.self_cpu_time_total)[: args.top]:
        print(f"  {event.key:58s}{event.self_cpu_time_total / total:7.1%}  calls {event.count}")


if __name__ == "__main__":
    main()
