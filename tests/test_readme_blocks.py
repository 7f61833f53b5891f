"""Every ```python block of README.md and of the integrations' READMEs runs as written.

Rules (the READMEs are written to them):

- Each block runs as its own program: ``python block.py`` in a fresh temporary directory,
  with a timeout, offline (non-local connects refused, ``HF_HUB_OFFLINE=1``).
- Directives are HTML comments (invisible on the rendered page) on the lines right above a
  block's fence, one per line:

  - ``<!-- readme-test: continues -->``: the block continues the block before it in the same
    file: it runs after that block's program (and whatever that one continued), as one
    program.
  - ``<!-- readme-test: server HOST:PORT COMMAND... -->``: the block is the client side of a
    server: COMMAND (e.g. the ``bitnet serve`` line of the block before it) is started in the
    block's directory, the block runs once HOST:PORT accepts connections, and the server is
    stopped afterwards. HOST must be a loopback address.
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

import ipaddress
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
_DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(.+?)\s*-->$")
LOCAL_CHECKPOINTS = ("DIR", "my-checkpoint")
TIMEOUT_S = 300
SERVER_START_S = 120

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
class Server:
    host: str
    port: int
    command: list[str]


@dataclass(frozen=True)
class Block:
    readme: str
    line: int  # of the opening fence, 1-based
    code: str
    directives: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"

    @property
    def continues(self) -> bool:
        return "continues" in self.directives

    @property
    def server(self) -> Server | None:
        for d in self.directives:
            if d.startswith("server "):
                address, *command = shlex.split(d.removeprefix("server "))
                host, _, port = address.rpartition(":")
                return Server(host, int(port), command)
        return None

    def check_directives(self) -> None:
        for d in self.directives:
            assert d == "continues" or d.startswith("server "), f"{self.id}: unknown {d!r}"
        server = self.server
        if server is not None:
            assert ipaddress.ip_address(server.host).is_loopback, f"{self.id}: not loopback"
            assert server.command, f"{self.id}: the server directive names no command"


_FENCE = re.compile(r"^```(\w*)\s*$")


def blocks_of(readme: str) -> list[Block]:
    """The top-level ```python blocks of ``readme`` (indented fences are not code to run)."""
    return parse_blocks(readme, (ROOT / readme).read_text(encoding="utf-8"))


def parse_blocks(readme: str, text: str) -> list[Block]:
    """The top-level ```python blocks of ``text``, named after ``readme``."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if opening.group(1) == "python":
            code = "\n".join(lines[i + 1 : end]) + "\n"
            out.append(Block(readme, i + 1, code, directives_above(lines, i)))
        i = end + 1
    return out


def directives_above(lines: list[str], fence: int) -> tuple[str, ...]:
    """The ``readme-test`` directives on the lines right above ``lines[fence]`` (blank lines
    between them and the fence allowed)."""
    found: list[str] = []
    for line in reversed(lines[:fence]):
        if not line.strip():
            continue
        directive = _DIRECTIVE.match(line.strip())
        if directive is None:
            break
        found.insert(0, directive.group(1))
    return tuple(found)


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


def program(block: Block, blocks: list[Block] | None = None) -> str:
    """The block's code, after the blocks it continues (among ``blocks``: its README's)."""
    if not block.continues:
        return block.code
    same_file = [b for b in (blocks or ALL_BLOCKS) if b.readme == block.readme]
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


@contextmanager
def serving(server: Server | None, env: dict[str, str], cwd: Path) -> Iterator[None]:
    """``server`` running in ``cwd`` until the block is done (nothing if None)."""
    if server is None:
        yield
        return
    log = (cwd / "server.log").open("w")
    proc = subprocess.Popen(server.command, cwd=cwd, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:  # bounded by the deadline
            assert proc.poll() is None, f"the server exited: {(cwd / 'server.log').read_text()}"
            try:
                socket.create_connection((server.host, server.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start listening"
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def run_block(block: Block, env: dict[str, str], cwd: Path) -> str:
    """What the block's program printed; fails unless it ran to the end and kept its promises."""
    script = cwd / "block.py"
    script.write_text(program(block), encoding="utf-8")
    with serving(block.server, env, cwd):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-4000:]}"
    for text in expected_output(block.code):
        assert text in done.stdout, f"{block.id} promises {text!r}; it printed:\n{done.stdout}"
    return done.stdout


def test_every_readme_has_runnable_blocks() -> None:
    for readme in READMES:
        assert blocks_of(readme), f"{readme} has no ```python block"
    for block in ALL_BLOCKS:
        block.check_directives()
    assert "microsoft/bitnet-b1.58-2B-4T" in hub_ids()
    assert expected_output("print(x)  # -> Paris\nprint(y)  # -> The weather is ...\n") == [
        "Paris",
        "The weather is",
    ]


def test_continues_directive_chains_blocks() -> None:
    text = "\n".join(
        [
            "```python",
            "a = 1",
            "```",
            "```sh",
            "echo not python",
            "```",
            "<!-- readme-test: continues -->",
            "```python",
            "b = a + 1",
            "```",
            "<!-- readme-test: continues -->",
            "",
            "```python",
            "print(b)  # -> 2",
            "```",
            "    ```python",
            "    indented = 'not run'",
            "    ```",
        ]
    )
    first, second, third = parse_blocks("synthetic", text)
    assert not first.continues and second.continues and third.continues
    assert program(third, [first, second, third]) == "a = 1\n\nb = a + 1\n\nprint(b)  # -> 2\n"
    assert program(first, [first, second, third]) == "a = 1\n"


def test_server_directive_runs_the_block_against_a_live_server(
    sandbox: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "hello.txt").write_text("hello from the server", encoding="utf-8")
    lines = [
        f"<!-- readme-test: server 127.0.0.1:{port} python -m http.server {port} "
        "--bind 127.0.0.1 -->",
        "```python",
        "import urllib.request",
        "",
        f'url = "http://127.0.0.1:{port}/hello.txt"',
        "print(urllib.request.urlopen(url, timeout=10).read().decode())  # -> hello from",
        "```",
    ]
    block = Block("synthetic", 2, "\n".join(lines[2:-1]) + "\n", directives_above(lines, 1))
    block.check_directives()
    assert block.server == Server(
        "127.0.0.1", port, ["python", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    )
    env = {k: v for k, v in sandbox.items() if k != "TINY_CHECKPOINT"}
    run_block(block, env, tmp_path)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_block_runs_as_written(block: Block, sandbox: dict[str, str], tmp_path: Path) -> None:
    env = dict(sandbox)
    tiny = Path(env.pop("TINY_CHECKPOINT"))
    for name in LOCAL_CHECKPOINTS:
        (tmp_path / name).symlink_to(tiny, target_is_directory=True)
    run_block(block, env, tmp_path)
