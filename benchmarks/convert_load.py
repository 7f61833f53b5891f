"""Peak memory of `bitnet convert`, and load times before and after converting.

Writes a random checkpoint of the given shape (cached in benchmarks/.cache/convert/), converts
it with the installed `bitnet` command, and loads the original and the converted directory
in fresh processes (each twice: the second load, with a warm page cache, is the figure).
Peak RSS is each process's own (wait4). A benchmark, not a test: run it on an idle machine.

    python benchmarks/convert_load.py                    # 2B-4T shape (1.2 GB checkpoint)
    python benchmarks/convert_load.py --shape small      # seconds: a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from llamacpp import run_with_rusage

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "convert"
BITNET = Path(sys.executable).with_name("bitnet")
LOAD = """
import sys, time
from bitnet_backend import load
start = time.perf_counter()
model = load(sys.argv[1], progress=False)
print(time.perf_counter() - start)
"""


def checkpoint(shape: str) -> Path:
    out = CACHE / shape
    if not (out / "config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "bitnet_backend.testing", "--shape", shape, str(out)]
        subprocess.run(cmd, check=True, cwd=CACHE)
    return out


def weights_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def load_s(path: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of a load in a fresh process, warm page cache."""
    cmd = [sys.executable, "-c", LOAD, str(path)]
    run_with_rusage(cmd)  # warms the page cache
    out, err, rss = run_with_rusage(cmd)
    if not out.strip():
        raise RuntimeError(f"load of {path} failed: {err}")
    return float(out.split()[-1]), rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape",
        default="2b-4t",
        help="checkpoint shape (bitnet_backend.testing) (default: 2b-4t)",
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON (default: none)")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    src = checkpoint(args.shape)
    converted = CACHE / f"{args.shape}-converted"
    shutil.rmtree(converted, ignore_errors=True)
    _, err, convert_rss = run_with_rusage(
        [str(BITNET), "convert", "--quiet", str(src), str(converted)]
    )
    if not (converted / "model.safetensors").is_file():
        raise RuntimeError(f"bitnet convert failed: {err}")
    load_before, rss_before = load_s(src)
    load_after, rss_after = load_s(converted)
    figures = {
        "shape": args.shape,
        "checkpoint_mb": weights_bytes(src) / 1e6,
        "converted_mb": weights_bytes(converted) / 1e6,
        "convert_peak_rss_mb": convert_rss * 1024 / 1e6,
        "load_s": load_before,
        "load_peak_rss_mb": rss_before * 1024 / 1e6,
        "converted_load_s": load_after,
        "converted_load_peak_rss_mb": rss_after * 1024 / 1e6,
    }
    width = max(map(len, figures))
    for key, value in figures.items():
        print(
            f"{key:<{width}}  {value:.2f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
