"""runtimes/ must work on a device without torch: import it and run the host path with torch blocked."""
from __future__ import annotations

from .conftest import run_torch_free


def test_runtimes_run_without_torch():
    proc = run_torch_free("""
        import numpy as np
        from cmlite import runtimes
        from cmlite.runtimes.decode import decode
        from cmlite.runtimes.paste import paste_masks
        from cmlite.runtimes.preprocess import preprocess
        from cmlite.runtimes.roi_align import assign_levels, roi_align
        pre = preprocess(np.zeros((48, 64, 3), np.uint8), 64, 100, (1.0, 2.0, 3.0))
        levels = [(np.zeros((2, s, s), np.float32), np.ones((4, s, s), np.float32), np.zeros((1, s, s), np.float32))
                  for s in (8, 4, 2, 1, 1)]
        p = decode(levels, (8, 16, 32, 64, 128), 0.05, 1000, 0.6, 50)
        lv = assign_levels(p.boxes, pre.resized_hw)
        pooled = roi_align([np.ones((4, 8, 8), np.float32)] * 3, p.boxes, lv, (8, 16, 32))
        masks = paste_masks(np.ones((len(p), 28, 28), np.float32), p.boxes, (48, 64))
        assert "torch" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
        assert len(p) > 50 and pooled.shape[0] == len(masks) == len(p)  # all scores tie: ties are kept
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
