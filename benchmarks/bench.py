"""Benchmark this engine against llama.cpp on a model of the BitNet b1.58 2B-4T shape.

    python benchmarks/bench.py [--threads 1,2] [--rounds 3] [--quick] [--skip-llamacpp] [--check]
                               [--shape 2b-4t|falcon3-3b|llama3-8b] [--isa native|avx2]

One run: builds llama.cpp from the llama-cpp-python sdist on PyPI (once, cached), writes a
random checkpoint of the exact microsoft/bitnet-b1.58-2B-4T shape (once, cached), converts
the same weights to GGUF TQ2_0 and TQ1_0, measures the machine's read bandwidth, then in
alternating rounds measures prefill (pp), decode (tg after a prompt), peak RSS and load time
of every engine variant and llama.cpp type. Prints a markdown table, writes
benchmarks/results/<timestamp>.json. --check instead verifies the GGUF conversion on a small
checkpoint (llama.cpp vs this engine). Everything cached lives in benchmarks/.cache.
--isa avx2 stands in for an AVX2-only CPU on a machine with AVX-512: this engine runs its AVX2
kernels and llama.cpp is built (separately cached) with AVX-512 off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bandwidth
import llamacpp
from run_context import CACHE, HERE, RESULTS, log, machine


@dataclass(frozen=True)
class EngineVariant:
    """One way to load this engine: a name and the cpu backend's load options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# The engine variants to measure. Add a row when the backend gains a load option; rows whose
# options the backend rejects are skipped with a message. Option values the backend lists
# (see OPTION_AXES) but no row covers are appended automatically, and variants that load to
# the same engine configuration (same info apart from the thread count) are measured once.
ENGINE_VARIANTS: list[EngineVariant] = [
    EngineVariant("default", {}, "default load options"),
    EngineVariant("int8-head", {"lm_head": "int8"}, "2-bit layout, int8 lm_head"),
    EngineVariant("q6-head", {"lm_head": "q6"}, "2-bit layout, 6-bit lm_head"),
    EngineVariant(
        "speed", {"preset": "speed"}, "preset: 4-bit lm_head, layout by CPU and thread count"
    ),
    EngineVariant("memory", {"preset": "memory"}, "preset: ~1.6-bit layout, 4-bit lm_head"),
]
# Load option -> attribute of bitnet_backend.backends.cpu listing its values (default first).
OPTION_AXES = {"lm_head": "_HEADS", "weight_layout": "_LAYOUTS", "preset": "_PRESETS"}
# Values not worth timing: the f32 head is the exact reference, never a speed option.
SKIP_VALUES = {("lm_head", "f32")}
LLAMACPP_TYPES = ("TQ2_0", "TQ1_0")
BASELINE = "llama.cpp TQ2_0"

FULL: dict[str, Any] = {
    "prompts": (128, 512),
    "n_gen": 64,
    "depth": 128,
    "bw_mib": 1024,
    "bw_reps": 15,
}
QUICK: dict[str, Any] = {"prompts": (16, 32), "n_gen": 8, "depth": 16, "bw_mib": 256, "bw_reps": 3}


# --- inputs ------------------------------------------------------------------------------


def ensure_model(path: Path, shape: str = "2b-4t") -> Path:
    """The random checkpoint of a model shape, written once by bitnet_backend.testing."""
    done = path / ".complete"
    if done.exists():
        return path
    log(f"writing a random {shape}-shaped checkpoint to {path} (once)")
    cmd = [sys.executable, "-m", "bitnet_backend.testing", "--shape", shape, str(path)]
    subprocess.run(cmd, check=True)
    done.write_text("ok\n")
    return path


def ensure_ggufs(
    lc: llamacpp.LlamaCpp, model: Path, types: tuple[str, ...] = LLAMACPP_TYPES
) -> dict[str, Path]:
    """GGUF files of the checkpoint in ``types`` (TQ2_0 / TQ1_0), rebuilt if the model changed.

    2B-4T goes through an f16 GGUF of llama.cpp's "bitnet" arch and llama-quantize; the
    Llama-architecture families are written directly by ``bitnet convert --to gguf`` (arch
    "llama", untied head), which llama.cpp runs as any Llama.
    """
    from bitnet_backend.architecture import BITNET_B158
    from bitnet_backend.config import ModelConfig

    family = ModelConfig.from_file(model / "config.json").architecture.family
    out_dir = CACHE / "gguf" / model.name
    out_dir.mkdir(parents=True, exist_ok=True)
    src_mtime = (model / "config.json").stat().st_mtime
    f16 = out_dir / "model.f16.gguf"
    files: dict[str, Path] = {}
    for qtype in types:
        q = out_dir / f"model.{qtype.lower()}.gguf"
        if q.exists() and q.stat().st_mtime < src_mtime:
            q.unlink()
        if not q.exists() and family != BITNET_B158:
            log(f"converting {model} -> {q.name}")
            cli = "from bitnet_backend.cli import main; raise SystemExit(main())"
            convert = ["convert", str(model), str(q), "--to", "gguf", "--type", qtype.lower()]
            subprocess.run([sys.executable, "-c", cli, *convert], check=True)
        if not q.exists():
            if not f16.exists() or f16.stat().st_mtime < src_mtime:
                log(f"converting {model} -> {f16.name}")
                f16.unlink(missing_ok=True)
                # In a child process: a child's peak RSS counts its parent's at spawn, so this
                # process must stay small for the RSS figures of later runs to be their own.
                script = str(HERE / "gguf_convert.py")
                subprocess.run([sys.executable, script, str(model), str(f16)], check=True)
            llamacpp.quantize(lc, f16, q, qtype, threads=os.cpu_count() or 1)
        files[qtype] = q
    return files


def gguf_tensor_bytes(path: Path) -> int:
    """Bytes of the tensors a decoded token reads: all of them, except the token embedding
    when an untied output head exists (then only one embedding row is read per token)."""
    import gguf

    tensors = {t.name: int(t.n_bytes) for t in gguf.GGUFReader(path).tensors}
    if "output.weight" in tensors:
        tensors.pop("token_embd.weight", None)
    return sum(tensors.values())


# --- engine variants ---------------------------------------------------------------------


def discover_variants(selected: list[str] | None, isa: str = "native") -> list[EngineVariant]:
    """ENGINE_VARIANTS plus listed-but-uncovered option values, minus what the backend rejects.

    ``isa`` other than "native" loads every variant with that kernel family (``isa`` option).
    """
    from bitnet_backend.backends import cpu
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.errors import InvalidParameterError
    from bitnet_backend.testing import write_checkpoint

    variants = list(ENGINE_VARIANTS)
    for axis, attr in OPTION_AXES.items():
        values = getattr(cpu, attr, None)
        if not values:
            continue
        for value in list(values)[1:]:  # the first is the default
            covered = any(v.options.get(axis) == value for v in variants)
            if not covered and (axis, value) not in SKIP_VALUES:
                variants.append(
                    EngineVariant(f"{axis}={value}", {axis: value}, "listed by backend")
                )
    if selected:
        variants = [v for v in variants if v.name in selected]
    if isa != "native":
        variants = [EngineVariant(v.name, {**v.options, "isa": isa}, v.note) for v in variants]
    tiny = CACHE / "tiny"
    if not (tiny / "config.json").exists():
        write_checkpoint(tiny)
    ckpt = load_checkpoint(tiny)
    usable: list[EngineVariant] = []
    seen: dict[str, str] = {}
    for v in variants:
        try:
            eng = cpu.BACKEND.load(ckpt, n_threads=1, **v.options)
        except InvalidParameterError as exc:
            log(f"skipping engine variant {v.name}: {exc}")
            continue
        info = {k: val for k, val in eng.info.items() if k != "n_threads"}
        eng.close()
        key = json.dumps(info, sort_keys=True, default=str)
        if key in seen:
            log(f"skipping engine variant {v.name}: same configuration as {seen[key]}")
            continue
        seen[key] = v.name
        usable.append(v)
    ckpt.close()
    return usable


def run_engine(
    model: Path, variant: EngineVariant, threads: int, cfg: dict[str, Any]
) -> dict[str, Any]:
    """One engine measurement in a fresh process (engine_worker.py)."""
    cmd = [sys.executable, str(HERE / "engine_worker.py"), str(model), "--threads", str(threads)]
    cmd += ["--options", json.dumps(variant.options)]
    cmd += ["--prompts", ",".join(map(str, cfg["prompts"])), "--n-gen", str(cfg["n_gen"])]
    cmd += ["--depth", str(cfg["depth"])]
    stdout, _, maxrss = llamacpp.run_with_rusage(cmd)
    res: dict[str, Any] = json.loads(stdout)
    res["rss_kib"] = maxrss
    return res


def ensure_converted(model: Path, info: dict[str, Any]) -> Path:
    """`bitnet convert` of the checkpoint in the layout and head a run reported (once, cached)."""
    layout, head = info["weight_format"], info["lm_head"]
    out = CACHE / "converted" / f"{model.name}-{layout}-{head}"
    done = out / ".complete"
    if done.exists() and done.stat().st_mtime >= (model / "config.json").stat().st_mtime:
        return out
    shutil.rmtree(out, ignore_errors=True)
    log(f"converting {model.name} to {out.name} (once)")
    cli = "from bitnet_backend.cli import main; raise SystemExit(main())"
    cmd = [sys.executable, "-c", cli, "convert", str(model), str(out)]
    # Run outside the source tree, so the installed package (with its extension) is imported.
    subprocess.run([*cmd, "--layout", layout, "--lm-head", head], check=True, cwd=CACHE)
    done.write_text("ok\n")
    return out


def converted_load_s(model: Path, info: dict[str, Any], threads: int) -> float:
    """Load time of the `bitnet convert`ed checkpoint, in a fresh process, warm page cache."""
    conv = ensure_converted(model, info)
    options = {"weight_layout": info["weight_format"], "lm_head": info["lm_head"]}
    cmd = [sys.executable, str(HERE / "engine_worker.py"), str(conv), "--threads", str(threads)]
    cmd += ["--options", json.dumps(options), "--prompts", "", "--n-gen", "0"]
    # The first load may read from disk (the other runs' files compete for the page cache);
    # the second is the engine's own time, as llama.cpp's load figure is.
    llamacpp.run_with_rusage(cmd)
    stdout, _, _ = llamacpp.run_with_rusage(cmd)
    return float(json.loads(stdout)["load_s"])


def run_llamacpp(
    lc: llamacpp.LlamaCpp, tool: Path, model: Path, threads: int, cfg: dict[str, Any]
) -> dict[str, Any]:
    """One llama-bench measurement (pp, then tg at depth) plus a load time."""
    res = llamacpp.bench(
        lc, model, threads, prompts=cfg["prompts"], n_gen=cfg["n_gen"], depth=cfg["depth"]
    )
    n_ctx = max([*cfg["prompts"], cfg["depth"] + cfg["n_gen"]])
    res["load_s"] = llamacpp.load_time(tool, model, threads, n_ctx)
    return res


# --- summary -----------------------------------------------------------------------------


def median(xs: list[float | None]) -> float | None:
    """Median of the present values (None when there are none)."""
    present = [x for x in xs if x is not None]
    return statistics.median(present) if present else None


def summarize(runs: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    """Medians per (system, threads), and paired per-round ratios to the baseline."""
    keys: list[tuple[str, int]] = []
    for r in runs:
        if (r["system"], r["threads"]) not in keys:
            keys.append((r["system"], r["threads"]))
    rows = []
    for system, t in keys:
        mine = [r for r in runs if r["system"] == system and r["threads"] == t]
        row: dict[str, Any] = {"system": system, "threads": t, "rounds": len(mine)}
        for m in [*metrics, "rss_kib", "load_s", "load_converted_s"]:
            row[m] = median([r.get(m) for r in mine])
        row["ratio"] = {}
        for m in metrics:
            paired: list[float | None] = []
            for r in mine:
                base = [
                    b
                    for b in runs
                    if b["system"] == BASELINE and b["threads"] == t and b["round"] == r["round"]
                ]
                if base and base[0].get(m) and r.get(m):
                    paired.append(r[m] / base[0][m])
            row["ratio"][m] = median(paired)
        row["bytes_per_token"] = mine[0].get("bytes_per_token")
        rows.append(row)
    return rows


def fmt(x: float | None, spec: str = ".1f") -> str:
    """A number for the table, or a dash."""
    return "-" if x is None else format(x, spec)


def markdown_table(
    rows: list[dict[str, Any]], metrics: list[str], bw: list[dict[str, Any]], tg: str
) -> str:
    """The results table (markdown)."""
    head = ["engine / variant", "threads", *metrics, "RSS MiB", "load s", "converted load s"]
    head += [f"{m} vs TQ2_0" for m in metrics]
    head += ["MB/token", f"{tg} roofline 4K / 2M", "% of 2M roofline"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        t = row["threads"]
        b4, b2 = bandwidth.gbs(bw, t, "4K"), bandwidth.gbs(bw, t, "2M")
        bpt = row.get("bytes_per_token")
        roof4 = b4 * 1e9 / bpt if b4 and bpt else None
        roof2 = b2 * 1e9 / bpt if b2 and bpt else None
        cells = [row["system"], str(t)]
        cells += [fmt(row[m]) for m in metrics]
        cells += [fmt(row["rss_kib"] / 1024 if row["rss_kib"] else None, ".0f")]
        cells += [fmt(row["load_s"], ".2f"), fmt(row.get("load_converted_s"), ".2f")]
        cells += [fmt(row["ratio"][m], ".2f") + ("x" if row["ratio"][m] else "") for m in metrics]
        cells += [fmt(bpt / 1e6 if bpt else None, ".0f"), f"{fmt(roof4)} / {fmt(roof2)}"]
        pct = 100 * row[tg] / roof2 if roof2 and row.get(tg) else None
        cells += [fmt(pct, ".0f") + ("%" if pct else "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bandwidth_table(bw: list[dict[str, Any]]) -> str:
    """Read bandwidth (markdown)."""
    lines = ["| threads | 4 KiB pages GB/s | 2 MiB huge pages GB/s | huge pages obtained |"]
    lines.append("|---|---|---|---|")
    for t in sorted({r["threads"] for r in bw}):
        huge = [r for r in bw if r["threads"] == t and r["pages"] == "2M"]
        got = f"{huge[0]['huge_fraction']:.0%}" if huge else "-"
        lines.append(
            f"| {t} | {fmt(bandwidth.gbs(bw, t, '4K'))} | {fmt(bandwidth.gbs(bw, t, '2M'))} "
            f"| {got} |"
        )
    return "\n".join(lines)


def other_cpu_busy(interval: float = 0.5) -> float:
    """Cores kept busy by other processes, sampled while none of ours is running."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 == total0:
        return 0.0
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def kv_bytes_per_position(info: dict[str, Any], config: Any) -> int:
    """KV cache bytes per context position (the engine's figure if it reports one)."""
    if "kv_bytes_per_position" in info:
        return int(info["kv_bytes_per_position"])
    elem = {"f32": 4, "f16": 2, "bf16": 2, "int8": 1, "q8": 1}.get(str(info.get("kv_dtype", "f32")))
    kv_dim = config.num_key_value_heads * config.head_dim
    return 2 * config.num_hidden_layers * kv_dim * (elem or 4)


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (1,2)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (3; quick: 1)")
    p.add_argument("--quick", action="store_true", help="short prompts and runs: smoke test")
    p.add_argument("--prompts", default="", help="comma-separated prompt sizes (128,512)")
    p.add_argument("--skip-llamacpp", action="store_true", help="measure this engine only")
    p.add_argument("--check", action="store_true", help="only verify the GGUF conversion")
    p.add_argument("--variants", default="", help="comma-separated engine variant names")
    p.add_argument(
        "--shape",
        choices=("2b-4t", "falcon3-3b", "llama3-8b"),
        default="2b-4t",
        help="model shape of the random checkpoint (2b-4t)",
    )
    p.add_argument("--checkpoint", type=Path, help="use this checkpoint instead")
    p.add_argument("--llamacpp-version", default=llamacpp.DEFAULT_VERSION)
    p.add_argument(
        "--isa",
        choices=tuple(llamacpp.ISA_OPTIONS),
        default="native",
        help="native: each system's best kernels; avx2: this engine's AVX2 kernels against a "
        "llama.cpp built without AVX-512 (an AVX2-only CPU)",
    )
    p.add_argument("--out", type=Path, help="results JSON (default results/<timestamp>.json)")
    p.add_argument("--show", type=Path, help="print the tables of a saved results JSON and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or the conversion check); print the table; write the JSON."""
    args = parse_args(argv)
    # SIGTERM as an exception, so that a measured child process is killed with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.show:
        print_report(json.loads(args.show.read_text()))
        return 0
    threads = [int(x) for x in args.threads.split(",") if x]
    cfg = dict(QUICK if args.quick else FULL)
    if args.prompts:
        cfg["prompts"] = tuple(int(x) for x in args.prompts.split(",") if x)
    rounds = args.rounds or (1 if args.quick else 3)
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {"date": stamp, "machine": machine()}
    report["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    lc = None
    tool = None
    if not args.skip_llamacpp or args.check:
        lc = llamacpp.build(CACHE, args.llamacpp_version, isa=args.isa)
        tool = llamacpp.build_logits_tool(lc, CACHE)
        report["llamacpp"] = lc.commit + ("" if args.isa == "native" else f" ({args.isa} build)")

    if args.check:
        import check

        assert lc is not None and tool is not None
        log("checking the GGUF conversion on a small checkpoint")
        res = check.run_check(CACHE, lc, tool, log=log)
        report["check"] = res
        out = args.out or RESULTS / f"check-{stamp}.json"
        _write(out, report)
        return 0 if res["passed"] else 1

    model = args.checkpoint or ensure_model(CACHE / f"model-{args.shape}", args.shape)
    ggufs = ensure_ggufs(lc, model) if lc is not None else {}
    variants = discover_variants([v for v in args.variants.split(",") if v] or None, args.isa)
    report["engine_variants"] = [vars(v) for v in variants]
    log(f"engine variants: {', '.join(v.name for v in variants)}")

    log("measuring read bandwidth")
    bw = bandwidth.measure(CACHE, tuple(threads), cfg["bw_mib"], cfg["bw_reps"])
    report["bandwidth"] = bw

    from bitnet_backend.checkpoints.hf import load_checkpoint

    ck = load_checkpoint(model)
    config = ck.config
    ck.close()
    # Decode reads the weights once per token plus the KV cache of the context so far.
    mean_ctx = cfg["depth"] + cfg["n_gen"] / 2
    llama_kv = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * 2
    llama_bytes = {q: gguf_tensor_bytes(p) for q, p in ggufs.items()}

    systems: list[tuple[str, Any]] = [(f"engine {v.name}", v) for v in variants]
    systems += [(f"llama.cpp {q}", q) for q in ggufs]
    runs: list[dict[str, Any]] = []
    for rnd in range(rounds):
        # Alternate the order so no system always runs right after the same neighbour.
        order = systems if rnd % 2 == 0 else systems[::-1]
        for t in threads:
            for name, what in order:
                other = other_cpu_busy()
                busy = f" ({other:.1f} cores busy elsewhere: may skew this)" if other > 0.3 else ""
                log(f"round {rnd + 1}/{rounds}, {t} thread(s): {name}{busy}")
                if isinstance(what, EngineVariant):
                    res = run_engine(model, what, t, cfg)
                    res["load_converted_s"] = converted_load_s(model, res["info"], t)
                    kv = kv_bytes_per_position(res["info"], config)
                    res["bytes_per_token"] = res["info"]["weight_bytes"] + kv * mean_ctx
                else:
                    assert lc is not None and tool is not None
                    res = run_llamacpp(lc, tool, ggufs[what], t, cfg)
                    res["bytes_per_token"] = llama_bytes[what] + llama_kv * mean_ctx
                res.update(system=name, threads=t, round=rnd, other_cpu_busy=other)
                runs.append(res)
    report["runs"] = runs

    report["summary"] = summarize(runs, _metrics(cfg))
    print_report(report)
    suffix = ("" if args.isa == "native" else f"-{args.isa}") + ("-quick" if args.quick else "")
    out = args.out or RESULTS / f"{stamp}{suffix}.json"
    _write(out, report)
    return 0


def _metrics(cfg: dict[str, Any]) -> list[str]:
    return [*(f"pp{n}" for n in cfg["prompts"]), f"tg{cfg['n_gen']}"]


def print_report(report: dict[str, Any]) -> None:
    """Print the machine, bandwidth and results tables of a run (or of a saved JSON)."""
    cfg, bw = report["config"], report["bandwidth"]
    metrics = _metrics(cfg)
    tg = metrics[-1]
    rounds = max((r["rounds"] for r in report["summary"]), default=0)

    print(
        f"\nMachine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"THP {report['machine']['thp']}"
    )
    if "llamacpp" in report:
        print(f"llama.cpp: {report['llamacpp']}")
    if report.get("args", {}).get("isa", "native") != "native":
        isa = report["args"]["isa"]
        print(f"ISA: {isa} (this engine's {isa} kernels; llama.cpp built for {isa} only)")
    print(f"\nRead bandwidth (GB/s, median of {cfg['bw_reps']}, {cfg['bw_mib']} MiB):\n")
    print(bandwidth_table(bw))
    print(
        f"\n{tg} after a {cfg['depth']}-token prompt; pp = prompt tokens/s from an empty cache; "
        f"medians of {rounds} round(s); ratios are paired per round.\n"
    )
    print(markdown_table(report["summary"], metrics, bw, tg))


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    log(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
