"""Command line (``python -m mcucoder --help``): data, train, export, export-int8, release,
firmware-tables, encode, decode, encode-video, decode-video, evaluate, report,
cache-latents, train-decoder, compact-decoder. Heavy imports happen
inside each command, so ``--help`` and packet tools stay quick."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import NoReturn, TypeVar

import numpy as np

T = TypeVar("T")


class CliError(Exception):
    """A mistake on the command line or in its input files: one line, status 1."""


def _readable(path: str | Path) -> Path:
    """``path`` as a Path, or a one-line error naming it when it cannot be read."""
    p = Path(path)
    if not p.exists():
        raise CliError(f"{p}: no such file")
    if p.is_dir():
        raise CliError(f"{p}: is a folder, expected a file")
    return p


def _check_channels(channels: int | None, codec) -> None:
    if channels is not None and not 1 <= channels <= codec.n_channels:
        raise CliError(
            f"--channels {channels} is out of range: {codec.name} has {codec.n_channels} "
            f"channels (1..{codec.n_channels})"
        )


def _read_packet(path: Path):
    """A packet file, parsed; a file that is not one (a JPEG...) is a one-line error."""
    from .bitstream import PacketError, parse_packet

    data = path.read_bytes()
    try:
        return parse_packet(data)
    except PacketError as e:
        raise CliError(f"{path}: not a valid Strata packet ({e})") from None


def _enough_channels(path: Path, n: int, channels: int | None) -> None:
    if channels is not None and channels > n:
        raise CliError(
            f"{path} has only {n} channel{'s' if n > 1 else ''}: "
            f"cannot decode --channels {channels}"
        )


def _cmd_data(args: argparse.Namespace) -> int:
    from .data import fetch, prepare_dev, prepare_dev_video

    res = fetch()
    if res.get("dev"):
        print(f"dev set (768x512): {prepare_dev()}")
    video = prepare_dev_video()
    print(f"dev clip frames (384x288): {video or 'MISSING (opencv-doc)'}")
    return 0 if res.get("train") else 1


def _config(cls: type[T], args: argparse.Namespace) -> T:
    """A training config from the options given; the dataclass's defaults for the rest."""
    given = {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if getattr(args, f.name, None) is not None
    }
    return cls(**given)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    train(_config(TrainConfig, args), resume=args.resume)
    return 0


def _cmd_cache_latents(args: argparse.Namespace) -> int:
    from .latent_cache import build_dev_cache, build_training_cache

    if args.dev:
        print(build_dev_cache(args.out, args.dev, args.model, args.encoder))
    else:
        print(
            build_training_cache(args.out, args.n, args.crop, args.model, args.encoder, args.seed)
        )
    return 0


def _cmd_train_decoder(args: argparse.Namespace) -> int:
    from .train_decoder import DecoderTrainConfig, train_decoder

    train_decoder(_config(DecoderTrainConfig, args), resume=args.resume)
    return 0


def _cmd_compact_decoder(args: argparse.Namespace) -> int:
    from .train_decoder import compact_checkpoint

    dst = compact_checkpoint(args.checkpoint, args.out)
    print(f"{args.checkpoint} -> {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
    return 0


def _config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    """One ``--option`` per dataclass field (bools as true/false), default None."""
    for f in fields(config_cls):
        if f.name != "out":
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                type=_flag if isinstance(f.default, bool) else type(f.default),
                default=None,
            )


def _register(checkpoint: str, name: str, histogram_crops: int = 128) -> int:
    """Checkpoint -> weights + entropy tables + manifest entry; returns the model_id."""
    from .data import RandomCrops, image_list
    from .export import build_tables, export_model, load_checkpoint

    net, ck = load_checkpoint(checkpoint)
    images = None
    if histogram_crops:
        images = RandomCrops(image_list("train"), 256, seed=99).batch(histogram_crops)
    info = {
        "steps": ck.get("step"),
        "train_wall_s": round(ck.get("elapsed_s", 0.0)),
        "train_config": ck.get("config"),
    }
    model_id = export_model(net, name, build_tables(net, images), info)
    print(f"{name}: model_id {model_id} ({model_id:#010x})")
    return model_id


def _cmd_export(args: argparse.Namespace) -> int:
    _register(args.checkpoint, args.name, 0 if args.no_histograms else args.histogram_crops)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .codec import Codec
    from .evaluate import evaluate, load_images, write_report

    images = load_images(Path(args.images), args.size)
    if args.decoder:  # a decoder trained on cached latents, with its base model's encoder
        from .train_decoder import candidate_codec

        codecs = {"mcucoder-float": candidate_codec(args.decoder, "float")}
        try:
            codecs["mcucoder-int8"] = candidate_codec(args.decoder, "int8")
        except FileNotFoundError:
            print("no INT8 encoder for this model: float only")
    elif args.checkpoint:  # a train checkpoint, shipped as release would, into --scratch
        from .evaluate import checkpoint_codecs

        if not args.scratch:
            raise CliError("--checkpoint needs --scratch DIR (never mcucoder/weights)")
        codecs = checkpoint_codecs(args.checkpoint, args.scratch, args.name or "candidate")
    else:
        codecs = {"mcucoder-float": Codec.load(args.model, encoder="float")}
        try:
            codecs["mcucoder-int8"] = Codec.load(args.model, encoder="int8")
        except FileNotFoundError:
            print("no INT8 encoder for this model: float only")
    report = evaluate(images, codecs, webp=not args.no_webp)
    write_report(report, Path(args.out), Path(args.plot) if args.plot else None)
    for name, bd in report["bd_rate_vs_jpeg"].items():
        print(name, {m: None if v is None else round(v, 2) for m, v in bd.items()})
    return 0


def _cmd_export_int8(args: argparse.Namespace) -> int:
    from .data import RandomCrops, image_list
    from .export import TF_PYTHON, export_int8
    from .registry import model_entry

    name, _ = model_entry(args.model)
    crops = RandomCrops(image_list("train"), 224, seed=7).batch(args.crops)
    print(f"wrote {export_int8(name, crops, args.tf_python or TF_PYTHON)}")
    return 0


def _outputs(inputs: list[Path], out: Path, suffix: str) -> list[Path]:
    """OUT is a file for one input, a folder (created) for several or when it is one."""
    if len(inputs) == 1 and not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in inputs]
    if len(set(names)) != len(names):
        raise SystemExit("several inputs share a name: encode them into separate folders")
    return [out / (n + suffix) for n in names]


def _load_codec(args: argparse.Namespace, encoder: str = "auto"):
    from .codec import Codec

    codec = Codec.load(
        args.model, encoder=encoder, reference_kernels=getattr(args, "reference_kernels", False)
    )
    if encoder != "float" and codec.int8 is None:
        print(
            "warning: this model has no INT8 encoder yet; using the float encoder", file=sys.stderr
        )
    return codec


def _cmd_encode(args: argparse.Namespace) -> int:
    from .data import load_rgb

    inputs = [_readable(p) for p in args.images]
    codec = _load_codec(args)
    _check_channels(args.channels, codec)
    for i, (src, dst) in enumerate(
        zip(inputs, _outputs(inputs, Path(args.o), ".strata"), strict=True)
    ):
        packet = codec.encode(
            load_rgb(src), args.channels, seq=args.seq + i, capture_time_ms=args.time
        )
        dst.write_bytes(packet)
        print(f"{src} -> {dst} ({len(packet)} bytes)")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from PIL import Image

    from .bitstream import FRAME_INTRA

    inputs = [_readable(p) for p in args.files]
    packets = [_read_packet(p) for p in inputs]
    codec = _load_codec(args, encoder="float")  # decoding never runs the encoder
    _check_channels(args.channels, codec)
    for src, p in zip(inputs, packets, strict=True):
        _enough_channels(src, p.n_channels, args.channels)
        if p.frame_type != FRAME_INTRA:
            raise CliError(
                f"{src} is a predicted frame (it needs frame {p.reference_seq}): "
                "decode its stream with decode-video"
            )
    for src, p, dst in zip(inputs, packets, _outputs(inputs, Path(args.o), ".png"), strict=True):
        Image.fromarray(codec.decode(p, args.channels)).save(dst)
        print(f"{src} -> {dst}")
    return 0


def _cmd_encode_video(args: argparse.Namespace) -> int:
    import av
    from PIL import Image

    from .bitstream import pack_stream
    from .video import VideoEncoder

    src = _readable(args.video)
    size = _size(args.size) if args.size else None
    codec = _load_codec(args)
    _check_channels(args.channels, codec)
    if args.key_interval < 1:
        raise CliError(f"--key-interval {args.key_interval}: must be at least 1")
    encoder = None if args.intra_only else VideoEncoder(codec, args.key_interval)
    packets, keys = [], 0
    try:
        container = av.open(str(src))
    except av.error.FFmpegError as e:
        raise CliError(f"{src}: not a video this build can read ({e})") from None
    with container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            img = frame.to_image()
            if size:
                img = img.resize(size, Image.Resampling.BOX)
            t_ms = int(round(float(frame.time or 0) * 1000))
            rgb = np.asarray(img.convert("RGB"))
            if encoder is None:
                packets.append(codec.encode(rgb, args.channels, seq=i, capture_time_ms=t_ms))
                keys += 1
            else:
                coded = encoder.encode(rgb, args.channels, seq=i, capture_time_ms=t_ms)
                packets.append(coded.packet)
                keys += coded.key
    if not packets:
        raise CliError(f"{src}: no video frames")
    Path(args.o).write_bytes(pack_stream(packets))
    total = sum(len(p) for p in packets)
    kind = "intra only" if encoder is None else f"{keys} key, {len(packets) - keys} predicted"
    print(f"{args.video} -> {args.o}: {len(packets)} frames ({kind}), {total} bytes")
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CliError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    if not (1 <= w <= 0xFFFF and 1 <= h <= 0xFFFF):
        raise CliError(f"--size {text}: each side must be in 1..65535")
    return w, h


def _cmd_decode_video(args: argparse.Namespace) -> int:
    from PIL import Image

    from .bitstream import PacketError, parse_packet, unpack_stream
    from .video import VideoDecoder

    src = _readable(args.file)
    try:
        packets = [parse_packet(p) for p in unpack_stream(src.read_bytes())]
    except PacketError as e:
        raise CliError(f"{src}: not a valid Strata packet stream ({e})") from None
    if not packets:
        raise CliError(f"{src}: the stream holds no frames")
    codec = _load_codec(args, encoder="float")
    _check_channels(args.channels, codec)
    _enough_channels(src, max(p.n_channels for p in packets), args.channels)
    out = Path(args.o)
    frames = []
    decoder = VideoDecoder(codec)
    for i in range(0, len(packets), 16):
        try:
            frames += decoder.decode(packets[i : i + 16], args.channels)
        except PacketError as e:
            raise CliError(f"{src}: {e}") from None
    if out.suffix.lower() == ".mp4":
        import av

        times = [p.capture_time_ms for p in packets]
        fps = (
            round(1000 * (len(times) - 1) / (times[-1] - times[0]))
            if len(times) > 1 and times[-1] > times[0]
            else 10
        )
        h, w = frames[0].shape[:2]
        with av.open(str(out), "w") as container:
            vs = container.add_stream(
                "libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps
            )
            vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            for f in frames:
                vf = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(f[: vs.height, : vs.width]), format="rgb24"
                )
                container.mux(vs.encode(vf))
            container.mux(vs.encode())
    else:
        out.mkdir(parents=True, exist_ok=True)
        for p, f in zip(packets, frames, strict=True):
            Image.fromarray(f).save(out / f"frame_{p.seq:06d}.png")
    print(f"{args.file} -> {out}: {len(frames)} frames")
    return 0


REPORTS_DIR = Path(__file__).parent / "weights" / "reports"


def _cmd_release(args: argparse.Namespace) -> int:
    """Checkpoint -> registered model + INT8 encoder + dev-set evaluation + model card."""
    from .data import RandomCrops, image_list
    from .export import export_int8

    _register(args.checkpoint, args.name)
    for stale in REPORTS_DIR.glob("*"):  # reports of the previous weights
        stale.unlink()
    try:
        export_int8(args.name, RandomCrops(image_list("train"), 224, seed=7).batch(200))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"no INT8 encoder: {e}", file=sys.stderr)
    return _cmd_report(args)


def _cmd_report(args: argparse.Namespace) -> int:
    """The registered model's dev-set reports and model card, rewritten (after a release,
    or after its INT8 encoder was exported again)."""
    from .codec import Codec
    from .data import cache_dir, prepare_dev, prepare_dev_video
    from .evaluate import evaluate, load_images, write_report
    from .model_card import write

    dev = prepare_dev(cache_dir() / "dev768")
    reports = {}
    rdir = REPORTS_DIR  # a report keeps throughput.json unless it measures it again
    for size in args.sizes.split(","):
        codecs = {"mcucoder-float": Codec.load(args.name, encoder="float")}
        try:
            codecs["mcucoder-int8"] = Codec.load(args.name, encoder="int8")
            if codecs["mcucoder-int8"].decoder_revision != "base":  # old and new side by side
                codecs["mcucoder-int8-base-decoder"] = Codec.load(
                    args.name, encoder="int8", decoder="base"
                )
        except FileNotFoundError:
            pass
        folder = prepare_dev_video() if size == "video" else dev
        if folder is None:
            print("no dev clip: skipped", file=sys.stderr)
            continue
        report = evaluate(load_images(folder, "224" if size == "224" else "full"), codecs)
        label = "dev-vtest" if size == "video" else f"dev-{size}"
        write_report(report, rdir / f"{label}.json", rdir / f"rd-{label}.png")
        reports[label] = rdir / f"{label}.json"
        print(size, report["bd_rate_vs_jpeg"])
    if args.throughput:
        from .benchmark import throughput

        tp = throughput(Codec.load(args.name, encoder="float"))
        (rdir / "throughput.json").write_text(json.dumps(tp, indent=2) + "\n")
    history = Path(__file__).parent / "weights" / "TRAINING.md"
    notes = history.read_text() if history.exists() else ""
    print(f"model card: {write(args.name, reports, notes.replace('# ', '## ', 1))}")
    return 0


def _cmd_release_decoder(args: argparse.Namespace) -> int:
    """A decoder-only checkpoint -> the model's decoder revision (same model_id, same
    packets, same firmware), then the reports and model card."""
    from .decoders import release_decoder

    out = release_decoder(args.checkpoint, args.name, args.revision)
    print(f"{args.name}: decoder revision {args.revision} -> {out}")
    return _cmd_report(args)


def _flag(v: str) -> bool:
    return v.lower() in ("1", "true", "yes", "on")


def _cmd_firmware_tables(args: argparse.Namespace) -> int:
    from .codec import Codec
    from .firmware_tables import c_header

    codec = Codec.load(args.model, encoder="int8")
    out = codec.int8.interpreter.get_output_details()[0]
    scale, zp = out["quantization"]
    text = c_header(codec.model_id, codec.tables, float(scale), int(zp))
    Path(args.o).write_text(text)
    print(f"wrote {args.o} for model_id {codec.model_id:#010x}")
    return 0


def _report_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that ends in ``_cmd_report`` (release, report, release-decoder)."""
    parser.add_argument("--name", default="mcucoder-s")
    parser.add_argument("--sizes", default="224,full,video", help="dev photos 224/full, dev clip")
    parser.add_argument("--throughput", action="store_true", help="also measure decoder frames/s")


def build_parser() -> argparse.ArgumentParser:
    from .train import TrainConfig
    from .train_decoder import DecoderTrainConfig

    p = _Parser(prog="python -m mcucoder", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sub.add_parser("data", help="fetch and cache the training and dev images").set_defaults(
        fn=_cmd_data
    )
    t = sub.add_parser("train", help="train (resumable)")
    t.add_argument("--out", required=True)
    t.add_argument("--resume", action="store_true")
    _config_flags(t, TrainConfig)
    t.set_defaults(fn=_cmd_train)
    cl = sub.add_parser(
        "cache-latents", help="encode training crops (or the dev set) once: cached symbols"
    )
    cl.add_argument("--out", required=True)
    cl.add_argument("--n", type=int, default=24000, help="number of training crops")
    cl.add_argument("--crop", type=int, default=192)
    cl.add_argument("--seed", type=int, default=0)
    cl.add_argument("--dev", choices=("224", "full"), help="cache the dev photos instead")
    cl.add_argument("--model")
    cl.add_argument("--encoder", default="int8", choices=("int8", "float"))
    cl.set_defaults(fn=_cmd_cache_latents)
    td = sub.add_parser("train-decoder", help="train a decoder on cached latents (resumable)")
    td.add_argument("--out", required=True)
    td.add_argument("--resume", action="store_true")
    _config_flags(td, DecoderTrainConfig)
    td.set_defaults(fn=_cmd_train_decoder)
    cd = sub.add_parser(
        "compact-decoder", help="a small resumable train-decoder checkpoint (fp16, no Adam)"
    )
    cd.add_argument("checkpoint")
    cd.add_argument("out")
    cd.set_defaults(fn=_cmd_compact_decoder)
    e = sub.add_parser("export", help="register a checkpoint as a model in mcucoder/weights")
    e.add_argument("checkpoint")
    e.add_argument("--name", default="mcucoder-s")
    e.add_argument("--histogram-crops", type=int, default=128)
    e.add_argument("--no-histograms", action="store_true")
    e.set_defaults(fn=_cmd_export)
    i8 = sub.add_parser("export-int8", help="INT8 TFLite encoder (needs the export venv)")
    i8.add_argument("--model")
    i8.add_argument("--crops", type=int, default=200, help="representative dataset size")
    i8.add_argument("--tf-python", help="python of the TensorFlow virtualenv")
    i8.set_defaults(fn=_cmd_export_int8)
    enc = sub.add_parser("encode", help="images -> packets (.strata)")
    enc.add_argument("images", nargs="+")
    enc.add_argument("-o", required=True, help="file for one image, folder for several")
    enc.add_argument("--channels", type=int, default=12)
    enc.add_argument("--seq", type=int, default=0, help="sequence number of the first packet")
    enc.add_argument("--time", type=int, default=0, help="capture time, ms since the epoch")
    enc.add_argument("--reference-kernels", action="store_true", help="bit-exact with TFLite-Micro")
    enc.add_argument("--model")
    enc.set_defaults(fn=_cmd_encode)
    dec = sub.add_parser("decode", help="packets -> PNG")
    dec.add_argument("files", nargs="+")
    dec.add_argument("-o", required=True, help="file for one packet, folder for several")
    dec.add_argument("--channels", type=int, default=None)
    dec.add_argument("--model")
    dec.set_defaults(fn=_cmd_decode)
    ev = sub.add_parser("encode-video", help="video -> packet stream file")
    ev.add_argument("video")
    ev.add_argument("-o", required=True)
    ev.add_argument("--channels", type=int, default=12)
    ev.add_argument("--size", help="WxH to resize frames to")
    ev.add_argument(
        "--intra-only", action="store_true", help="every frame on its own (no predicted frames)"
    )
    ev.add_argument(
        "--key-interval", type=int, default=50, help="frames from one key frame to the next"
    )
    ev.add_argument("--reference-kernels", action="store_true")
    ev.add_argument("--model")
    ev.set_defaults(fn=_cmd_encode_video)
    dv = sub.add_parser("decode-video", help="packet stream file -> PNG folder or .mp4")
    dv.add_argument("file")
    dv.add_argument("-o", required=True)
    dv.add_argument("--channels", type=int, default=None)
    dv.add_argument("--model")
    dv.set_defaults(fn=_cmd_decode_video)
    fw = sub.add_parser("firmware-tables", help="C header: entropy tables + int8 lookup")
    fw.add_argument("-o", required=True)
    fw.add_argument("--model")
    fw.set_defaults(fn=_cmd_firmware_tables)
    rel = sub.add_parser("release", help="export + INT8 + evaluate + model card")
    rel.add_argument("checkpoint")
    _report_flags(rel)
    rel.set_defaults(fn=_cmd_release)
    rep = sub.add_parser("report", help="re-evaluate a registered model: reports + model card")
    _report_flags(rep)
    rep.set_defaults(fn=_cmd_report)
    rd = sub.add_parser(
        "release-decoder", help="a train-decoder checkpoint -> the model's decoder revision"
    )
    rd.add_argument("checkpoint")
    rd.add_argument("--revision", required=True, help="short name, e.g. dec3")
    _report_flags(rd)
    rd.set_defaults(fn=_cmd_release_decoder)
    v = sub.add_parser("evaluate", help="rate-distortion against JPEG and WebP")
    v.add_argument("--images", required=True, help="folder of images (dev set: see `data`)")
    v.add_argument("--size", choices=("224", "full"), default="full")
    v.add_argument("--out", required=True, help="report.json")
    v.add_argument("--plot", help="rd.png")
    v.add_argument("--model", help="model name or id (default: the manifest's default)")
    v.add_argument("--no-webp", action="store_true")
    v.add_argument("--decoder", help="a train-decoder checkpoint: its base model with this decoder")
    v.add_argument("--checkpoint", help="a train checkpoint: tables + INT8 as release makes them")
    v.add_argument("--scratch", help="with --checkpoint: folder for its tables, weights, .tflite")
    v.add_argument("--name", help="with --checkpoint: model name in --scratch (candidate)")
    v.set_defaults(fn=_cmd_evaluate)
    return p


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line (then status 2), as every other mistake."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except CliError as e:
        print(f"python -m mcucoder {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # unreadable or unwritable files, images PIL cannot open
        print(f"python -m mcucoder {args.cmd}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
