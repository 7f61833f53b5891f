"""llama.cpp for side-by-side runs: fetched from PyPI, built once, driven by subprocess.

The llama-cpp-python source distribution vendors a pinned llama.cpp. It is downloaded with
pip, unpacked and built (Release, GGML_NATIVE) under benchmarks/.cache; nothing of llama.cpp
lives in this repository. Besides llama-bench and llama-quantize, a small program of our own
(llama_logits.cpp) is linked against the built libllama to read logits and load times. The
tests need only that program: ``build_logits_only`` builds libllama and it, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_VERSION = "0.3.36"  # the llama.cpp (commit 0c1e570) behind the anchors in KERNELS notes
TARGETS = ("llama-bench", "llama-quantize")
LIBRARY_TARGET = "llama"  # libllama and the ggml libraries it links
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    # Shared libraries so that llama_logits.cpp can link against the same libllama.
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_OPENSSL=OFF",
)
# The instruction sets a build may use, each built in its own directory: "native" is this
# CPU's best (GGML_NATIVE); "avx2" stands in for an AVX2-only CPU on a machine with AVX-512.
ISA_OPTIONS: dict[str, tuple[str, ...]] = {
    "native": ("-DGGML_NATIVE=ON",),
    "avx2": (
        "-DGGML_NATIVE=OFF",
        "-DGGML_AVX=ON",
        "-DGGML_AVX2=ON",
        "-DGGML_FMA=ON",
        "-DGGML_F16C=ON",
        "-DGGML_BMI2=ON",
        "-DGGML_AVX_VNNI=OFF",
        "-DGGML_AVX512=OFF",
        "-DGGML_AVX512_VBMI=OFF",
        "-DGGML_AVX512_VNNI=OFF",
        "-DGGML_AVX512_BF16=OFF",
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
    ),
}


def build_dir_name(isa: str) -> str:
    """The build directory of one ISA setting (the native build keeps its historical name)."""
    if isa not in ISA_OPTIONS:
        raise ValueError(f"unknown llama.cpp ISA {isa!r} (expected one of {sorted(ISA_OPTIONS)})")
    return "build" if isa == "native" else f"build-{isa}"


@dataclass(frozen=True)
class LlamaCpp:
    """Paths of one built llama.cpp."""

    version: str
    source: Path  # the vendored llama.cpp tree
    build: Path
    isa: str = "native"  # a key of ISA_OPTIONS

    @property
    def bin_dir(self) -> Path:
        return self.build / "bin"

    def tool(self, name: str) -> Path:
        return self.bin_dir / name

    def built(self, target: str) -> Path:
        """The file a build target produces: a tool, or the shared libllama."""
        return self.bin_dir / "libllama.so" if target == LIBRARY_TARGET else self.tool(target)

    @property
    def commit(self) -> str:
        stamp = self.build / "commit.txt"
        return stamp.read_text().strip() if stamp.exists() else "unknown"


def _log(msg: str) -> None:
    print(f"[llama.cpp] {msg}", file=sys.stderr, flush=True)


def _run_logged(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}); see {log}:\n" + "\n".join(tail)
        )


def fetch_source(cache: Path, version: str = DEFAULT_VERSION) -> Path:
    """Download and unpack the llama-cpp-python sdist; return its vendored llama.cpp tree."""
    root = cache / "llamacpp"
    root.mkdir(parents=True, exist_ok=True)
    src = root / version / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if (src / "CMakeLists.txt").exists():
        return src
    tarball = root / f"llama_cpp_python-{version}.tar.gz"
    if not tarball.exists():
        _log(f"downloading llama-cpp-python=={version} source distribution from PyPI")
        # Only this package as source: ":all:" would also build its build tools (cmake) from
        # source to read the sdist's metadata, which takes longer than llama.cpp itself.
        pip = [sys.executable, "-m", "pip", "download", "--no-deps"]
        pip += ["--no-binary", "llama-cpp-python"]
        _run_logged([*pip, f"llama-cpp-python=={version}", "-d", str(root)], root / "pip.log")
    if not tarball.exists():
        raise RuntimeError(f"pip did not produce {tarball}")
    _log(f"unpacking {tarball.name}")
    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root / version, filter="data")
        else:  # Python without extraction filters; the archive is a PyPI sdist
            tar.extractall(root / version)
    if not (src / "CMakeLists.txt").exists():
        raise RuntimeError(f"no vendored llama.cpp in {tarball}")
    return src


@contextlib.contextmanager
def _locked(cache: Path, version: str) -> Iterator[None]:
    """One writer at a time per llama.cpp version: a cache shared by several checkouts (or
    CI runs) on one machine would otherwise see two downloads or builds interleave."""
    import fcntl

    lock = cache / "llamacpp" / f"{version}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(
    cache: Path,
    version: str = DEFAULT_VERSION,
    jobs: int = 2,
    targets: tuple[str, ...] = TARGETS,
    isa: str = "native",
) -> LlamaCpp:
    """Fetch and build llama.cpp once per ISA setting (cached); later calls only check it.

    ``targets`` are CMake targets of the one build tree: a later call with more targets builds
    only what is missing.
    """
    cache = cache.resolve()
    with _locked(cache, version):
        src = fetch_source(cache, version)
        bdir = cache / "llamacpp" / version / build_dir_name(isa)
        lc = LlamaCpp(version, src, bdir, isa)
        if all(lc.built(t).exists() for t in targets) and (bdir / "commit.txt").exists():
            return lc
        if not (bdir / "CMakeCache.txt").exists():
            _log("configuring (cmake)")
            cmake = ["cmake", "-S", str(src), "-B", str(bdir), *CMAKE_OPTIONS, *ISA_OPTIONS[isa]]
            _run_logged(cmake, bdir.parent / f"cmake-{bdir.name}.log")
        _log(f"building {', '.join(targets)} with -j{jobs} (several minutes, once)")
        t0 = time.perf_counter()
        _run_logged(
            ["cmake", "--build", str(bdir), f"-j{jobs}", "--target", *targets],
            bdir.parent / f"{bdir.name}.log",
        )
        _log(f"built in {time.perf_counter() - t0:.0f} s")
        (bdir / "commit.txt").write_text(_source_commit(src) + "\n")
    return lc


def _source_commit(src: Path) -> str:
    # The sdist carries llama.cpp's build-info; fall back to git metadata when present.
    for line in (src.parent.parent / "PKG-INFO").read_text(errors="replace").splitlines():
        if line.startswith("Version:"):
            version = line.split(":", 1)[1].strip()
            break
    else:
        version = "?"
    commit = "unknown"
    if shutil.which("git"):
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            commit = out.stdout.strip()
    return f"llama-cpp-python {version}, llama.cpp {commit}"


LOGITS_SOURCE = HERE / "llama_logits.cpp"


def logits_tool_path(cache: Path, version: str = DEFAULT_VERSION, isa: str = "native") -> Path:
    """Where build_logits_tool puts llama_logits.cpp's program for this cache, version and ISA."""
    name = "llama-logits" if isa == "native" else f"llama-logits-{isa}"
    return cache.resolve() / "llamacpp" / version / name


def logits_tool_current(tool: Path) -> bool:
    """Whether ``tool`` exists and was compiled from the llama_logits.cpp of this checkout."""
    stamp = tool.with_name(tool.name + ".sha256")
    return tool.is_file() and stamp.is_file() and stamp.read_text().strip() == _logits_digest()


def _logits_digest() -> str:
    # By content, not mtime: a fresh clone's source is always newer than the cached program.
    return hashlib.sha256(LOGITS_SOURCE.read_bytes()).hexdigest()


def build_logits_tool(lc: LlamaCpp, cache: Path) -> Path:
    """Compile llama_logits.cpp against the built libllama (cached by source content)."""
    out = logits_tool_path(cache, lc.version, lc.isa)
    with _locked(cache.resolve(), lc.version):
        if logits_tool_current(out):
            return out
        _compile_logits_tool(lc, out)
    return out


def build_logits_only(cache: Path, version: str = DEFAULT_VERSION, jobs: int = 2) -> Path:
    """libllama and llama_logits.cpp's program, none of llama.cpp's tools (what tests need)."""
    return build_logits_tool(build(cache, version, jobs, targets=(LIBRARY_TARGET,)), cache)


def _compile_logits_tool(lc: LlamaCpp, out: Path) -> None:
    # Written aside and renamed: a reader never sees a half-written program.
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    cmd = [
        os.environ.get("CXX", "g++"),
        "-O2",
        "-std=c++17",
        str(LOGITS_SOURCE),
        "-I",
        str(lc.source / "include"),
        "-I",
        str(lc.source / "ggml" / "include"),
        "-L",
        str(lc.bin_dir),
        f"-Wl,-rpath,{lc.bin_dir}",
        "-lllama",
        "-lggml",
        "-lggml-base",
        "-o",
        str(tmp),
    ]
    _run_logged(cmd, out.with_name(out.name + ".log"))
    tmp.replace(out)
    out.with_name(out.name + ".sha256").write_text(_logits_digest() + "\n")


def quantize(
    lc: LlamaCpp, src: Path, dst: Path, qtype: str, threads: int = 2, extra: list[str] | None = None
) -> Path:
    """Run llama-quantize (by default the tied embedding becomes a Q6_K output head)."""
    if dst.exists():
        return dst
    tmp = dst.with_suffix(".tmp")
    _log(f"llama-quantize {src.name} -> {dst.name} ({qtype})")
    cmd = [str(lc.tool("llama-quantize")), *(extra or []), str(src), str(tmp), qtype, str(threads)]
    _run_logged(cmd, dst.with_suffix(".quantize.log"))
    tmp.rename(dst)
    return dst


def run_with_rusage(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, str, int]:
    """Run a command; return stdout, stderr and its own peak RSS in KiB (wait4, not a sum)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # communicate() would reap the child and lose its rusage; read the pipes on threads instead.
    import threading

    chunks: dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    threads = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for t in threads:
        t.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): do not leave the measured process running.
        proc.kill()
        proc.wait()
        raise
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{chunks.get('err', '')[-3000:]}"
        )
    return chunks.get("out", ""), chunks.get("err", ""), int(usage.ru_maxrss)


def bench(
    lc: LlamaCpp,
    model: Path,
    threads: int,
    *,
    prompts: tuple[int, ...],
    n_gen: int,
    depth: int,
) -> dict[str, Any]:
    """One llama-bench round: pp for each prompt size, then tg n_gen after `depth` tokens.

    Returns tok/s per test ("pp128", "tg64"), and the larger peak RSS of the two processes.
    """
    base = [str(lc.tool("llama-bench")), "-m", str(model), "-t", str(threads), "-r", "1"]
    base += ["-o", "json"]
    out: dict[str, Any] = {}
    rss = 0
    runs = [
        ["-p", ",".join(map(str, prompts)), "-n", "0"],
        ["-p", "0", "-n", str(n_gen), "-d", str(depth)],
    ]
    for extra in runs:
        stdout, _, maxrss = run_with_rusage([*base, *extra])
        rss = max(rss, maxrss)
        for rec in json.loads(stdout):
            key = f"pp{rec['n_prompt']}" if rec["n_prompt"] else f"tg{rec['n_gen']}"
            out[key] = float(rec["avg_ts"])
            out.setdefault(
                "build", f"{rec.get('build_commit', '?')} ({rec.get('build_number', '?')})"
            )
            out.setdefault("cpu", rec.get("cpu_info", ""))
    out["rss_kib"] = rss
    return out


def load_time(tool: Path, model: Path, threads: int, n_ctx: int) -> float:
    """Seconds from opening the GGUF to a context ready to decode (llama_logits --load-only)."""
    cmd = [str(tool), "--model", str(model), "--threads", str(threads), "--ctx", str(n_ctx)]
    stdout, _, _ = run_with_rusage([*cmd, "--load-only"])
    return float(json.loads(stdout)["load_s"])


def logits(
    tool: Path,
    model: Path,
    ids: list[int],
    *,
    n_gen: int,
    threads: int,
    out_file: Path,
    exact: bool = True,
) -> tuple[Any, list[int]]:
    """All-position logits of `ids` and `n_gen` greedy tokens from llama.cpp."""
    import numpy as np

    cmd = [str(tool), "--model", str(model), "--threads", str(threads)]
    cmd += ["--ids", ",".join(map(str, ids)), "--gen", str(n_gen), "--logits-out", str(out_file)]
    if exact:
        # f16 K/V and the CPU flash attention (f16 rounding) are not what is being compared.
        cmd += ["--kv-f32", "--no-flash-attn"]
    stdout, _, _ = run_with_rusage(cmd)
    meta = json.loads(stdout)
    arr = np.fromfile(out_file, dtype=np.float32).reshape(len(ids), int(meta["n_vocab"]))
    return arr, [int(t) for t in meta["generated"]]


def ensure_tool(lc: LlamaCpp, name: str, jobs: int = 2) -> Path:
    """Build one more target of the same llama.cpp tree on demand (e.g. llama-batched-bench)."""
    if not lc.tool(name).exists():
        _log(f"building {name} with -j{jobs} (once)")
        _run_logged(
            ["cmake", "--build", str(lc.build), f"-j{jobs}", "--target", name],
            lc.build.parent / f"build-{name}.log",
        )
    return lc.tool(name)


def batched_bench(
    lc: LlamaCpp,
    model: Path,
    threads: int,
    *,
    n_prompt: int,
    n_gen: int,
    parallel: tuple[int, ...],
) -> dict[str, Any]:
    """llama-batched-bench: B sequences, each its own n_prompt-token prompt, then n_gen steps.

    Returns per B its prompt and generation rates (``speed_pp``, ``speed_tg``: aggregate tok/s
    over all sequences) and the peak RSS of the run.
    """
    tool = ensure_tool(lc, "llama-batched-bench")
    n_kv = max(parallel) * (n_prompt + n_gen)
    cmd = [str(tool), "-m", str(model), "-t", str(threads), "-c", str(n_kv)]
    cmd += ["-npp", str(n_prompt), "-ntg", str(n_gen), "-npl", ",".join(map(str, parallel))]
    cmd += ["--output-format", "jsonl"]
    stdout, _, maxrss = run_with_rusage(cmd)
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if not rows:
        raise RuntimeError(f"{' '.join(cmd)} printed no result rows:\n{stdout[-2000:]}")
    per_batch = {
        int(r["pl"]): {"speed_pp": float(r["speed_pp"]), "speed_tg": float(r["speed_tg"])}
        for r in rows
    }
    return {"batches": per_batch, "rss_kib": maxrss}
