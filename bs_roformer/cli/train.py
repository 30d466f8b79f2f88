"""`bs-roformer train --config CONFIG.yaml --data ROOT --out RUN_DIR`: train or fine-tune a model.

Under `torchrun --nproc_per_node N -m bs_roformer train ...` the same command trains with
DistributedDataParallel, one process per GPU (or CPU process with gloo).
"""

import argparse
from typing import List

from ..training.settings import PRECISIONS, SCHEDULERS
from ..training.trainer import Trainer
from .reporting import run_reporting


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bs-roformer train",
        description="Train a model described by an MSST-format YAML config on a MUSDB18-HQ-layout dataset.",
        epilog="Example: bs-roformer train --config configs/vocals.yaml --data musdb18hq --out runs/vocals",
    )
    parser.add_argument("--config", required=True, metavar="YAML", help="MSST-format config (audio, model, training sections)")
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root holding train/ (and valid/ or test/ for validation)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="where checkpoints, the config and the logs go")
    parser.add_argument("--valid", metavar="DIR", help="validation tracks (default: ROOT/valid, else ROOT/test)")
    parser.add_argument("--checkpoint", "--start_check_point", metavar="PATH", help="start from these weights (fine-tuning; new stems get new mask heads)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.ckpt")
    parser.add_argument("--freeze-backbone", action="store_true", help="train only the mask heads")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: this process's GPU, else MPS in a single process, else CPU)")
    parser.add_argument("--epochs", type=int, help="override training.num_epochs")
    parser.add_argument("--steps-per-epoch", type=int, help="override training.num_steps")
    parser.add_argument("--batch-size", type=int, help="override training.batch_size")
    parser.add_argument("--gradient-accumulation-steps", type=int, help="override training.gradient_accumulation_steps")
    parser.add_argument("--lr", type=float, help="override training.lr")
    parser.add_argument("--scheduler", choices=SCHEDULERS, help="override training.scheduler")
    parser.add_argument("--warmup-steps", type=int, help="override training.warmup_steps")
    parser.add_argument("--ema-decay", type=float, help="override training.ema_decay (0.99 by default; 0 = no EMA weights)")
    parser.add_argument("--ema-warmup", action=argparse.BooleanOptionalAction, default=None,
                        help="let the EMA decay grow over its first updates (training.ema_warmup; on by default)")
    remix = parser.add_mutually_exclusive_group()
    remix.add_argument("--remix", dest="remix_stems", action="store_true", default=None, help="stems of a chunk from different tracks (training.remix_stems: true)")
    remix.add_argument("--aligned", dest="remix_stems", action="store_false", help="all stems of a chunk from one track and offset, the real mix (training.remix_stems: false, the default)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), help="fp32, bf16 autocast, or fp16 autocast (CUDA)")
    parser.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, help="override training.seed")
    parser.add_argument("--checkpoint-every", type=int, help="also save the training state every N steps")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps in total (resume later with --resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.resume and args.checkpoint:
        parser.error("--resume continues RUN_DIR from its own last.ckpt; --checkpoint starts a new run from other weights: pass one")

    def train() -> int:
        with Trainer(
            args.config, args.data, args.out,
            valid=args.valid, pretrained=args.checkpoint, freeze_backbone=args.freeze_backbone, resume=args.resume,
            device=args.device, max_steps=args.max_steps, progress=not args.no_progress,
            epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps, lr=args.lr, scheduler=args.scheduler,
            warmup_steps=args.warmup_steps, ema_decay=args.ema_decay, ema_warmup=args.ema_warmup,
            remix_stems=args.remix_stems, precision=args.precision,
            num_workers=args.num_workers, seed=args.seed, checkpoint_every=args.checkpoint_every,
        ) as trainer:
            trainer.train()
        return 0

    return run_reporting("bs-roformer train", train, interrupted=f"interrupted; continue from the last saved state with --resume --out {args.out}")
