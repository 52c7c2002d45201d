"""The camera's fast resize (OpenCV's bilinear) against the exact one (Pillow's filter, the official preprocessing):
mask and box AP on a val set with each, the parity verdict of the fast path's instances against the exact path's
(the FP16 criteria: 98% of the instances found, mask IoU median >= 0.98, its 10% worst >= 0.9), and the
preprocessing time of each, side by side in one process.

    python benchmarks/fast_resize.py --model out/models/openvino-int8 --model out/models/onnx-fp32 \\
        --val out/data/annotations/instances_val.json --val-images out/data/val [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--val-images", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    import cv2

    from cmlite import runtimes
    from cmlite.apps.device_info import cpu_line
    from cmlite.apps.parity import compare_instances, judge
    from cmlite.apps.table import format_table
    from cmlite.calibration.coco_eval import evaluate, load_coco
    from cmlite.calibration.synth_scene import MovingScene
    from cmlite.runtimes.preprocess import preprocess

    frame = MovingScene(640, 480, seed=3).render(1.0)  # a webcam frame: what the camera resizes
    rows, out = [], {"cpu": cpu_line(), "models": {}}
    coco = load_coco(args.val)
    paths = [Path(args.val_images) / coco.imgs[i]["file_name"] for i in sorted(coco.getImgIds())]
    for model in args.model:
        seg = runtimes.load(model, threads=args.threads)
        metrics = {}
        for resize in ("exact", "fast"):
            seg.resize = resize
            metrics[resize], _ = evaluate(seg, args.val, args.val_images, progress=False, mode="sequential")
        results = []
        for path in paths:
            image = cv2.imread(str(path))
            seg.resize = "exact"
            ref = seg.predict(image)
            seg.resize = "fast"
            results.append(compare_instances(ref, seg.predict(image), seg.config.post_nms_topk))
        verdict = judge(results, "fp16")
        cfg = seg.config
        ms = {}
        for _ in range(3):  # interleaved rounds of 100 frames each
            for resize in ("exact", "fast"):
                t = []
                for _ in range(100):
                    t0 = time.perf_counter()
                    preprocess(frame, cfg.min_size, cfg.max_size, cfg.pixel_mean, cfg.size_divisibility, seg.fixed_hw,
                               resize)
                    t.append((time.perf_counter() - t0) * 1e3)
                ms.setdefault(resize, []).append(statistics.median(t))
        e, f = metrics["exact"], metrics["fast"]
        rows.append([Path(model).name, f"{e['mask_ap']:.2f} / {f['mask_ap']:.2f}",
                     f"{f['mask_ap'] - e['mask_ap']:+.2f}",
                     f"{e['box_ap']:.2f} / {f['box_ap']:.2f}", verdict.word,
                     f"{verdict.figures['found']}/{verdict.figures['instances']}",
                     round(verdict.figures["median_mask_iou"], 3), round(verdict.figures["low_mask_iou"], 3),
                     round(statistics.median(ms["exact"]), 2), round(statistics.median(ms["fast"]), 2)])
        out["models"][model] = {"exact": e, "fast": f, "verdict": verdict.word, "figures": verdict.figures,
                                "failed": verdict.failed, "preprocess_ms": ms}
    print(format_table(["model", "mask AP exact / fast", "diff", "box AP exact / fast", "parity (FP16 criteria)",
                        "found", "median mask IoU", "10% worst", "preprocess ms exact", "fast"], rows))
    print(f"\n{len(paths)} val images; preprocessing of a 640x480 frame, medians of 3 interleaved rounds of 100\n"
          f"CPU: {cpu_line()}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
