"""`rrambnn import` and `rrambnn export`: QONNX/ONNX models in and out (the `[onnx]` extra)."""

from __future__ import annotations

from pathlib import Path

from rrambnn.cli_args import emit, float_arg, int_arg, json_arg, weights_arg


def cmd_import(args):
    from rrambnn.errors import RrambnnError
    from rrambnn.fileio import check_writable
    from rrambnn.fileio import check_name_lengths
    from rrambnn.gen import onnx_io
    check_name_lengths(args.model, "MODEL", sibling=False)
    check_name_lengths(args.out)
    if Path(args.out).suffix != ".npz" or Path(args.out).is_dir():
        raise RrambnnError(f"--out must name a .npz file, not {str(args.out)!r}")
    import math
    if not (math.isfinite(args.input_range) and args.input_range > 0):
        raise RrambnnError(f"--input-range must be a positive number, not {args.input_range!r}")
    out = check_writable(args.out)
    levels = (0.0, 1.0)
    if args.input_levels is not None:
        from rrambnn.studies.sweep import parse_floats
        levels = tuple(parse_floats(args.input_levels, "--input-levels", -1e9, 1e9))
        if len(levels) != 2 or args.binarise is None:
            raise RrambnnError("--input-levels takes two values, LO,HI, and goes with --binarise")
    net = onnx_io.import_model(args.model, input_scale=1 / args.input_range, output_mode=args.output,
                               crop=args.crop, binarise=args.binarise, input_levels=levels)
    kind = "binary" if not hasattr(net, "abits") else \
        f"{'ternary' if getattr(net, 'ternary', False) else f'{net.wbits}-bit'} weights, {net.abits}-bit activations"
    if hasattr(net, "spec"):
        res = {"out": str(out), "arch": net.spec.text, "weight_bits": net.wbits, "activation_bits": net.abits,
               "output_mode": net.output_mode}
        where_from = f"input {net.spec.input[0]}x{net.spec.input[1]} (the image's centre)"
    else:
        crop = net.preprocess.crop if hasattr(net, "preprocess") else net.crop
        res = {"out": str(out), "arch": "-".join(map(str, net.arch)), "crop": crop,
               "weight_bits": getattr(net, "wbits", 1), "activation_bits": getattr(net, "abits", 1),
               "output_mode": net.output_mode, **({"weight_code": "ternary"} if getattr(net, "ternary", False) else {})}
        where_from = f"centre crop {crop}x{crop}"
        if hasattr(net, "preprocess"):
            res["binarise_threshold"] = net.preprocess.threshold
            where_from += f", pixels >= {net.preprocess.threshold} are 1"
    net.save(out)
    emit(args, res, [f"{args.model}: {res['arch']} ({kind}), {where_from}, {net.output_mode} output stage",
                     f"wrote {out}"])


def cmd_export(args):
    from rrambnn.errors import RrambnnError
    from rrambnn.fileio import check_writable
    from rrambnn.gen import onnx_io
    from rrambnn.fileio import check_name_lengths
    from rrambnn.gen.netfile import load_network
    if args.weights:
        check_name_lengths(args.weights, "--weights", sibling=False)
    check_name_lengths(args.out)
    if Path(args.out).suffix != ".onnx" or Path(args.out).is_dir():
        raise RrambnnError(f"--out must name a .onnx file, not {str(args.out)!r}")
    out = check_writable(args.out)
    net = load_network(args.weights, multi_bit=True, cnn=True)
    res = onnx_io.export(net, out, batch=args.batch)
    emit(args, res, [f"{res['arch']}: {res['nodes']} QONNX nodes ({res['dtype']}, batch {args.batch}); scores = the "
                     f"chip's margins S - theta (argmax: argmax; priority: first score >= 0)", f"wrote {out}"])


def add_onnx_commands(sub):
    i = sub.add_parser("import", help="a QONNX/ONNX model (fully connected or convolutional) -> a weights file "
                                      "(exact; needs pip install -e '.[onnx]')")
    i.add_argument("model", metavar="MODEL.onnx", help="the model (Quant/BipolarQuant/MultiThreshold, MatMul/Gemm, "
                                                       "BatchNormalization, ...)")
    i.add_argument("--out", required=True, help="weights .npz to write")
    i.add_argument("--input-range", type=float_arg, default=255.0,
                   help="the model's input is pixel / this (255: pixels in [0, 1], as FINN's MNIST models; 1: raw "
                        "0-255 pixels)")
    i.add_argument("--binarise", type=int_arg, metavar="T",
                   help="the model takes the image already binarised: pixels >= T as the upper input level, the "
                        "others as the lower (for models with no input quantiser of their own)")
    i.add_argument("--input-levels", metavar="LO,HI",
                   help="with --binarise: the model's two input values (default 0,1; FINN's bipolar: --input-levels=-1,1)")
    i.add_argument("--crop", type=int_arg, help="the centre crop the model's inputs are (default: sqrt of its inputs)")
    i.add_argument("--output", choices=("priority", "argmax"),
                   help="the chip's output stage (default: the model's if rrambnn wrote it, else argmax)")
    json_arg(i)
    i.set_defaults(fn=cmd_import)
    e = sub.add_parser("export", help="a weights file (binary, multi-bit or CNN) -> a QONNX model qonnx's executor runs (needs pip install -e "
                                      "'.[onnx]')")
    weights_arg(e)
    e.add_argument("--out", required=True, help="model .onnx to write")
    e.add_argument("--batch", type=int_arg, default=1, help="images per execution (the model's fixed batch size)")
    json_arg(e)
    e.set_defaults(fn=cmd_export)
