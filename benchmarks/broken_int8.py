"""INT8 ONNX folders broken as a faulty conversion would break them, for judging the parity verdict
(tests/test_parity.py, and benchmarks/parity_criteria.py given the folders): each a copy with its manifest's hashes
made to match, so that only the verdict can tell.

    python benchmarks/broken_int8.py models/onnx-int8 "wrong scales" out/onnx-int8-wrong-scales
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from cmlite.runtimes.manifest import read_manifest, sha256

HOWS = ("wrong scales", "swapped graph", "skipped layer")


def broken_int8(folder, out, how: str):
    """A copy of an INT8 ONNX folder broken as a faulty conversion would be, its manifest's hashes made to match:
    "wrong scales" (the first conv's weight scales x 3), "swapped graph" (graph 2 of another model: its weights
    redrawn, same shapes), "skipped layer" (the backbone's first conv that keeps its input's shape, bypassed)."""
    shutil.copytree(folder, out)
    m = read_manifest(out)
    kind = "masks" if how == "swapped graph" else "dense"
    path = out / m.graphs[kind].file
    proto = onnx.load(str(path))
    g = proto.graph
    init = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def weight_dq(conv):  # the DequantizeLinear that gives a conv its weights, from an int8 initializer
        dq = producer.get(conv.input[1])
        return dq if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in init else None

    if how == "wrong scales":
        conv = next(n for n in g.node if n.op_type == "Conv" and weight_dq(n))
        scale = init[weight_dq(conv).input[1]]
        scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 3, scale.name))
    elif how == "swapped graph":
        rng = np.random.default_rng(0)
        for t in g.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype == np.float32 and a.size > 1:  # scales, biases, norms: redrawn at their own spread
                t.CopyFrom(numpy_helper.from_array((rng.permutation(a.ravel())).reshape(a.shape).astype(a.dtype),
                                                   t.name))
            elif a.dtype == np.int8:  # the quantized weights
                t.CopyFrom(numpy_helper.from_array(rng.permutation(a.ravel()).reshape(a.shape), t.name))
    else:
        def same_shape(n):  # stride 1, one group, as many channels out as in
            w = weight_dq(n)
            strides = next((list(a.ints) for a in n.attribute if a.name == "strides"), [1, 1])
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            return w is not None and strides == [1, 1] and group == 1 and \
                init[w.input[0]].dims[0] == init[w.input[0]].dims[1]
        conv = next(n for n in g.node if n.op_type == "Conv" and "backbone" in n.name and same_shape(n))
        for n in g.node:  # its readers read its input instead
            n.input[:] = [conv.input[0] if i == conv.output[0] else i for i in n.input]
        g.node.remove(conv)
    onnx.save(proto, str(path))
    m.graphs[kind].sha256, m.graphs[kind].bytes = sha256(path), path.stat().st_size
    m.write(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in HOWS:
        sys.exit(f"usage: broken_int8.py ONNX_INT8_FOLDER {{{' | '.join(repr(h) for h in HOWS)}}} OUT")
    print(broken_int8(Path(sys.argv[1]), Path(sys.argv[3]), sys.argv[2]))
