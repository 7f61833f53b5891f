"""Every ```python block of README.md and of the integrations' READMEs runs as written.

Rules (the READMEs are written to them):

- Each block runs as its own program: ``python block.py`` in a fresh temporary directory,
  with a timeout, offline (non-local connects refused, ``HF_HUB_OFFLINE=1``).
- A block whose fence is preceded by the line ``<!-- readme-test: continues -->`` continues
  the block before it in the same file: it runs after that block's program (and whatever
  that one continued), as one program.
- Hub ids that a block names (``"owner/name"``, e.g. ``"microsoft/bitnet-b1.58-2B-4T"``)
  resolve through the real hub code path, offline: a tiny generated checkpoint is stored
  under that id in a temporary ``HF_HOME`` cache.
- The local checkpoint directories the blocks use as placeholders (``LOCAL_CHECKPOINTS``)
  exist in the working directory as tiny generated checkpoints.

- A line ending in a comment ``# -> TEXT`` says what it prints: the program's output must
  contain TEXT (a trailing ``...`` leaves the rest open). Such lines run on the embedded demo
  model, with prompts it handles, so the README shows what a user will see.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bitnet_backend.checkpoints.hub import parse_repo_id
from bitnet_backend.model import DEFAULT_MODEL_DIR
from bitnet_backend.testing import write_checkpoint, write_hub_cache

ROOT = Path(__file__).resolve().parent.parent
READMES = (
    "README.md",
    "integrations/langchain/README.md",
    "integrations/llama_index/llms/README.md",
    "integrations/llama_index/embeddings/README.md",
)
CONTINUES = "<!-- readme-test: continues -->"
LOCAL_CHECKPOINTS = ("DIR", "my-checkpoint")
TIMEOUT_S = 300

# The network guard, loaded into every block's interpreter before the block runs.
SITECUSTOMIZE = """\
import os

from bitnet_backend.offline import block_network


class _Patch:
    setattr = staticmethod(setattr)

    @staticmethod
    def setenv(name, value):
        os.environ[name] = value


block_network(_Patch())
"""

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").is_file(), reason="no default model bundled"
)


@dataclass(frozen=True)
class Block:
    readme: str
    line: int  # of the opening fence, 1-based
    code: str
    continues: bool

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"


_FENCE = re.compile(r"^```(\w*)\s*$")


def blocks_of(readme: str) -> list[Block]:
    """The top-level ```python blocks of ``readme`` (indented fences are not code to run)."""
    lines = (ROOT / readme).read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if opening.group(1) == "python":
            before = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
            code = "\n".join(lines[i + 1 : end]) + "\n"
            out.append(Block(readme, i + 1, code, before == CONTINUES))
        i = end + 1
    return out


_PRINTS = re.compile(r"#\s*->\s*(.+?)\s*$")


def expected_output(code: str) -> list[str]:
    """The ``# -> TEXT`` promises of ``code``, without a trailing ellipsis."""
    out = []
    for line in code.splitlines():
        promise = _PRINTS.search(line)
        if promise is not None:
            out.append(promise.group(1).removesuffix("...").rstrip())
    return out


ALL_BLOCKS = [b for readme in READMES for b in blocks_of(readme)]


def program(block: Block) -> str:
    """The block's code, after the blocks it continues."""
    same_file = [b for b in ALL_BLOCKS if b.readme == block.readme]
    chain = [block]
    index = same_file.index(block)
    while chain[0].continues:
        if index == 0:
            raise AssertionError(f"{block.id}: marked as continuing, but no block comes before")
        index -= 1
        chain.insert(0, same_file[index])
    return "\n".join(b.code for b in chain)


def hub_ids() -> set[str]:
    quoted = re.compile(r"""["']([^"'\s]+/[^"'\s]+)["']""")
    return {s for b in ALL_BLOCKS for s in quoted.findall(b.code) if parse_repo_id(s) is not None}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every block: the hub cache, the placeholders' parent, the guard."""
    root = tmp_path_factory.mktemp("readme")
    tiny = write_checkpoint(root / "tiny", shape="tiny")
    for repo in hub_ids():
        write_hub_cache(root / "hf" / "hub", repo, tiny)
    guard = root / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    pythonpath = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        PATH=path,
        PYTHONPATH=pythonpath,
        HF_HOME=str(root / "hf"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        TINY_CHECKPOINT=str(tiny),
    )
    return env


def test_every_readme_has_runnable_blocks() -> None:
    for readme in READMES:
        assert blocks_of(readme), f"{readme} has no ```python block"
    assert "microsoft/bitnet-b1.58-2B-4T" in hub_ids()
    assert expected_output("print(x)  # -> Paris\nprint(y)  # -> The weather is ...\n") == [
        "Paris",
        "The weather is",
    ]


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_block_runs_as_written(block: Block, sandbox: dict[str, str], tmp_path: Path) -> None:
    env = dict(sandbox)
    tiny = Path(env.pop("TINY_CHECKPOINT"))
    for name in LOCAL_CHECKPOINTS:
        (tmp_path / name).symlink_to(tiny, target_is_directory=True)
    script = tmp_path / "block.py"
    script.write_text(program(block), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-4000:]}"
    for text in expected_output(block.code):
        assert text in done.stdout, f"{block.id} promises {text!r}; it printed:\n{done.stdout}"
