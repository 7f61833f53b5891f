"""The C++ kernel test (csrc/tests/kernel_test.cpp) built natively and, for the NEON kernels,
cross-compiled for AArch64 and run under qemu-user (with and without the dot-product
extension). Every kernel table is compared with the scalar reference."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "csrc" / "kernels"
TEST_SOURCE = ROOT / "csrc" / "tests" / "kernel_test.cpp"
FLAGS = ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Werror"]

pytestmark = pytest.mark.skipif(
    not TEST_SOURCE.exists(), reason="C++ sources are not next to the tests (installed tree)"
)


def _compile(
    compiler: str,
    out: Path,
    sources: list[tuple[Path, list[str]]],
    defines: list[str],
    link_flags: list[str],
) -> None:
    objects = []
    for i, (src, extra) in enumerate(sources):
        obj = out.parent / f"{out.name}.{i}.o"
        subprocess.run(
            [compiler, *FLAGS, *defines, *extra, "-c", str(src), "-o", str(obj)],
            check=True,
            capture_output=True,
            text=True,
        )
        objects.append(str(obj))
    subprocess.run(
        [compiler, *FLAGS, *objects, "-o", str(out), *link_flags],
        check=True,
        capture_output=True,
        text=True,
    )


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout
    return proc.stdout


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 kernels")
def test_x86_kernels_match_reference(tmp_path: Path) -> None:
    avx512 = [
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512vnni",
        "-mavx512dq",
        "-mavx2",
        "-mfma",
        "-Wno-uninitialized",
        "-Wno-maybe-uninitialized",
    ]
    defines = ["-DBITNET_HAVE_AVX2", "-DBITNET_HAVE_AVX512"]
    exe = tmp_path / "kernel_test"
    _compile(
        "g++",
        exe,
        [
            (TEST_SOURCE, []),
            (KERNELS / "ref.cpp", []),
            (KERNELS / "dispatch.cpp", []),
            (KERNELS / "avx2.cpp", ["-mavx2", "-mfma"]),
            (KERNELS / "avx512.cpp", avx512),
            (KERNELS / "avx512_vbmi.cpp", [*avx512, "-mavx512vbmi"]),
        ],
        defines,
        [],
    )
    out = _run([str(exe)])
    assert "FAIL" not in out
    assert "tables: ref avx2" in out


CROSS = shutil.which("aarch64-linux-gnu-g++")
QEMU = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


@pytest.mark.skipif(
    CROSS is None or QEMU is None,
    reason="needs g++-aarch64-linux-gnu and qemu-user (installed by .ci/run)",
)
@pytest.mark.parametrize(
    ("cpu", "env"), [("max", {}), ("max", {"BITNET_NEON_NO_DOTPROD": "1"}), ("cortex-a53", {})]
)
def test_neon_kernels_match_reference_under_qemu(
    tmp_path: Path, cpu: str, env: dict[str, str]
) -> None:
    assert CROSS is not None and QEMU is not None
    exe = tmp_path / "kernel_test_aarch64"
    _compile(
        CROSS,
        exe,
        [
            (TEST_SOURCE, []),
            (KERNELS / "ref.cpp", []),
            (KERNELS / "dispatch.cpp", []),
            (KERNELS / "neon.cpp", []),
            (KERNELS / "neon_dotprod.cpp", ["-march=armv8.2-a+dotprod"]),
        ],
        ["-DBITNET_HAVE_NEON"],
        ["-static"],
    )
    out = _run([QEMU, "-cpu", cpu, str(exe)], env)
    assert "FAIL" not in out
    assert "tables: ref neon" in out
