"""What holds a process's memory, step by step: the interpreter and cmlite's own imports, the runtime library, the
loaded model, the first inference, ten more, and the throughput mode's lanes: resident memory (VmRSS) after each
step and the peak (VmHWM), one fresh process per model and setting, in MB.

    python benchmarks/memory_steps.py --model v19/openvino-int8 --model v19/onnx-int8 --image frame.png \\
        [--threads 1] [--min-size 600 --max-size 1000] [--env CMLITE_SYSTEM_MALLOC=1] [--json out.json]

--env NAME=VALUE (repeatable) runs each model a second time with that setting, beside the default.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, sys

def mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)

steps = {"python": mb("VmRSS")}
import cv2, numpy
from cmlite import runtimes
from cmlite.runtimes.manifest import read_manifest
model, image, threads, min_size, max_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
steps["cmlite and numpy, OpenCV"] = mb("VmRSS")
import importlib
from cmlite.runtimes.target_table import get
row = get(read_manifest(model).target)
importlib.import_module((row.modules or (row.package,))[0])
steps["runtime library"] = mb("VmRSS")
seg = runtimes.load(model, threads=threads, maskiou=False, min_size=min_size, max_size=max_size)
steps["model loaded"] = mb("VmRSS")
img = cv2.imread(image)
seg.predict(img)
steps["first inference"] = mb("VmRSS")
for _ in range(10):
    seg.predict(img)
steps["11 inferences"] = mb("VmRSS")
one = mb("VmHWM")
from cmlite.runtimes.modes.throughput import Throughput
items = iter(range(8))
run = Throughput(seg, lambda timeout: (next(items), img), lanes=2, threads=2)  # two lanes of one thread each
try:
    while True:
        run.next(5.0)
except StopIteration:
    pass
run.close()
steps["throughput mode (2 lanes)"] = mb("VmRSS")
print(json.dumps({"steps": steps, "peak_one_stream": one, "peak_throughput": mb("VmHWM")}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-size", type=int, default=600)
    ap.add_argument("--max-size", type=int, default=1000)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE: a second run of each model with it")
    ap.add_argument("--json")
    args = ap.parse_args()
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.table import format_table

    settings = [("default", {})] + [(e, dict([e.split("=", 1)])) for e in args.env]
    rows, out = [], []
    for model in args.model:
        for name, extra in settings:
            run = subprocess.run([sys.executable, "-c", WORKER, model, args.image, str(args.threads),
                                  str(args.min_size), str(args.max_size)], capture_output=True, text=True,
                                 env={**os.environ, **extra})
            if run.returncode:
                print(f"{model} ({name}) failed: {run.stderr.strip().splitlines()[-1]}", file=sys.stderr)
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            out.append({"model": model, "setting": name, **r})
            rows.append([Path(model).name, name, *r["steps"].values(), r["peak_one_stream"], r["peak_throughput"],
                         f"{r['peak_throughput'] / r['peak_one_stream']:.2f}x"])
            steps = list(r["steps"])
    print(format_table(["model", "setting", *steps, "peak, one stream", "peak, throughput", "ratio"], rows,
                       floatfmt=".1f"))
    print(f"RSS in MB after each step; peak = VmHWM; {args.threads} thread(s), {args.min_size}/{args.max_size}, "
          f"{args.image}\nCPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "runs": out}, indent=1))


if __name__ == "__main__":
    main()
