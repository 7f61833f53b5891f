"""llama.cpp's logits program for tests/test_gguf_llamacpp.py: where it lives, how it is built.

    python tests/llamacpp_tool.py        # once per machine; prints the program's path

It is benchmarks/llama_logits.cpp linked against libllama of the llama.cpp that the
llama-cpp-python sdist vendors (fetched from PyPI with pip), built by benchmarks/llamacpp.py's
recipe restricted to libllama: several minutes on 2 cores. The build lives in the user cache
(``$BITNET_LLAMACPP_CACHE``, else ``$XDG_CACHE_HOME/bitnet_backend``), outside any checkout,
so every clone and CI run on the machine shares it; a changed llama_logits.cpp is recompiled.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

CACHE_ENV = "BITNET_LLAMACPP_CACHE"
RECIPE = Path(__file__).resolve().parents[1] / "benchmarks" / "llamacpp.py"
NOT_BUILT = (
    "llama.cpp's logits program is not built for this checkout: "
    "`python tests/llamacpp_tool.py` builds it once per machine (.ci/run does)"
)


def cache_dir() -> Path:
    """The per-machine cache the program is built in."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bitnet_backend"


def recipe() -> ModuleType:
    """benchmarks/llamacpp.py, loaded from the checkout (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bitnet_benchmarks_llamacpp", RECIPE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {RECIPE}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve the module's annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def built_tool() -> Path | None:
    """The program if it is built from this checkout's llama_logits.cpp, else None."""
    llamacpp = recipe()
    tool: Path = llamacpp.logits_tool_path(cache_dir())
    return tool if llamacpp.logits_tool_current(tool) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (2)")
    args = p.parse_args(argv)
    tool = recipe().build_logits_only(cache_dir(), jobs=args.jobs)
    print(tool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
