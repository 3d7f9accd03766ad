"""Command line: data, train, export, encode, decode."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields


def _cmd_data(args: argparse.Namespace) -> int:
    from .data import fetch

    res = fetch()
    return 0 if res.get("train") else 1


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    kw = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    train(TrainConfig(**kw), resume=args.resume)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .data import RandomCrops, image_list
    from .export import build_tables, export_model, load_checkpoint

    net, ck = load_checkpoint(args.checkpoint)
    images = None
    if not args.no_histograms:
        images = RandomCrops(image_list("train"), 256, seed=99).batch(args.histogram_crops)
    tables = build_tables(net, images)
    info = {
        "steps": ck.get("step"),
        "train_wall_s": round(ck.get("elapsed_s", 0.0)),
        "train_config": ck.get("config"),
    }
    model_id = export_model(net, args.name, tables, info)
    print(f"{args.name}: model_id {model_id} ({model_id:#010x})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .train import TrainConfig

    p = argparse.ArgumentParser(prog="python -m mcucoder", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("data", help="fetch and cache the training and dev images").set_defaults(
        fn=_cmd_data
    )
    t = sub.add_parser("train", help="train (resumable)")
    t.add_argument("--out", required=True)
    t.add_argument("--resume", action="store_true")
    for f in fields(TrainConfig):
        if f.name != "out":
            t.add_argument(
                "--" + f.name.replace("_", "-"), dest=f.name, type=type(f.default), default=None
            )
    t.set_defaults(fn=_cmd_train)
    e = sub.add_parser("export", help="register a checkpoint as a model in mcucoder/weights")
    e.add_argument("checkpoint")
    e.add_argument("--name", default="mcucoder-s")
    e.add_argument("--histogram-crops", type=int, default=128)
    e.add_argument("--no-histograms", action="store_true")
    e.set_defaults(fn=_cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
