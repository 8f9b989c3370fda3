"""The README and docs/ say what the code does.

Every shell command shown in a ```bash / ```sh / ```shell / ```console block of README.md and docs/*.md is
parsed by the real argument parsers (and its config overrides, config files and weights names checked); every
```python block is compiled and the `higherhrnet` names it uses must exist. Marked slow: the blocks are run for
real in a temporary folder. An HTML comment just before a block says how to check it (docs/testing.md):

    <!-- docs-check: parse-only (why) -->                  never run: downloads, GPUs, COCO, hours, placeholders
    <!-- docs-check: add make-synthetic --train 8 --val 4 --> run, these arguments appended to that subcommand
    <!-- docs-check: needs-names -->                       needs registered-name loading (higherhrnet.hub)

Also: docs/cli.md is the CLI's --help (tools/make_cli_reference.py), links between the pages resolve,
docs/index.md lists every page, and the README's tables and commands agree with the code and CI.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import io
import os
import posixpath
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from higherhrnet.cli import SUBCOMMANDS, build_parser
from higherhrnet.cli.common import split_overrides, value_options

from conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# Registered-name loading (Predictor("synthetic_w16_256"), `higherhrnet weights`) lands with higherhrnet.hub;
# blocks marked needs-names are run only where it exists.
NAMES_LANDED = importlib.util.find_spec("higherhrnet.hub") is not None
# Pages the README and index link to that are being written on other branches.
PAGES_FROM_OTHER_BRANCHES = {"docs/training.md", "docs/weights.md"}
# Commands shown for the reader to run by hand; the check knows nothing about them beyond their name.
EXTERNAL_COMMANDS = {"mkdir", "wget", "unzip", "cp", "tensorboard", "nvidia-smi"}
# Packages other than this one that the docs tell people to pip-install.
OTHER_PACKAGES = {"tensorboard", "opencv-python"}
# What the copies the blocks run in hold.
RUN_FOLDERS = ("experiments", "models", "demo", "tools")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ------------------------------------------------------------------ reading the pages

@dataclass(frozen=True)
class Markers:
    parse_only: bool = False
    needs_names: bool = False
    additions: tuple = ()          # ((subcommand, (arg, ...)), ...)


@dataclass(frozen=True)
class Block:
    page: str                      # repo-relative path
    line: int                      # line of the opening fence, from 1
    language: str
    text: str
    markers: Markers

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_markers(comment: str) -> Markers:
    """The words after `docs-check:`; text in parentheses is a reason, for the reader."""
    text = re.sub(r"\([^)]*\)", "", comment)
    parse_only = needs_names = False
    additions = []
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        words = clause.split()
        if words == ["parse-only"]:
            parse_only = True
        elif words == ["needs-names"]:
            needs_names = True
        elif words[0] == "add" and len(words) >= 3 and words[1] in SUBCOMMANDS:
            additions.append((words[1], tuple(words[2:])))
        else:
            raise ValueError(f"unknown docs-check clause {clause!r} (parse-only, needs-names, add SUBCOMMAND ARGS)")
    return Markers(parse_only, needs_names, tuple(additions))


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the docs-check comments directly above them."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+)\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1))), None)
        assert end is not None, f"{rel(path)}:{i + 1}: unclosed code block"
        comments, k = [], i - 1
        while k >= 0 and lines[k].startswith("<!--"):
            comments.insert(0, lines[k])
            k -= 1
        markers = Markers()
        for comment in comments:
            found = re.fullmatch(r"<!--\s*docs-check:(.*)-->\s*", comment)
            if found:
                new = parse_markers(found.group(1))
                markers = Markers(markers.parse_only or new.parse_only, markers.needs_names or new.needs_names,
                                  markers.additions + new.additions)
        blocks.append(Block(rel(path), i + 1, fence.group(2).lower(), "\n".join(lines[i + 1:end]), markers))
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
SHELL_BLOCKS = [b for b in BLOCKS if b.language in SHELL_LANGUAGES]
PYTHON_BLOCKS = [b for b in BLOCKS if b.language in ("python", "py")]


@dataclass(frozen=True)
class Command:
    block: Block
    line: int                      # page line of its first physical line
    words: tuple                   # the program and its arguments
    env: tuple                     # (("OMP_NUM_THREADS", "1"), ...)
    cwd: str                       # folder it runs in, relative to the block's start ("" = there)

    @property
    def id(self) -> str:
        return f"{self.block.page}:{self.line}:{self.words[0]}"


def shell_commands(block: Block) -> list[Command]:
    """The block's simple commands: `\\` continuations joined, comments dropped, `&&` / `;` / `|` chains split,
    VAR=value prefixes and `nice` taken off, `cd` followed (and not returned)."""
    logical, start, pending = [], None, ""
    for offset, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if block.language == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if start is None:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append((start, pending + line))
        start, pending = None, ""
    commands, cwd = [], ""
    for line_number, text in logical:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        simple: list[list[str]] = [[]]
        for word in words:
            if word in ("&&", "||", ";", "|", "&"):
                simple.append([])
            else:
                simple[-1].append(word)
        for command in filter(None, simple):
            env = []
            while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
                env.append(tuple(command.pop(0).split("=", 1)))
            if command[:1] == ["nice"]:
                command = command[3:] if command[1:2] == ["-n"] else command[1:]
            if not command:
                continue
            if command[0] == "cd":
                cwd = posixpath.normpath(posixpath.join(cwd, command[1])) if len(command) > 1 else ""
                cwd = "" if cwd == "." else cwd
                continue
            if command[0] in (".", "source"):
                continue
            commands.append(Command(block, line_number, tuple(command), tuple(env), cwd))
    return commands


COMMANDS = [command for block in SHELL_BLOCKS for command in shell_commands(block)]


# ------------------------------------------------------------------ what a command is

@lru_cache(maxsize=None)
def script_subcommands() -> dict[str, str]:
    generator = runpy.run_path(str(REPO / "tools" / "make_cli_reference.py"), run_name="make_cli_reference")
    return generator["script_subcommands"]()


def _is_python(word: str) -> bool:
    return re.fullmatch(r"python(3(\.\d+)?)?", word) is not None


def torchrun_arguments(words) -> argparse.Namespace:
    from torch.distributed.run import get_args_parser

    return _parse(get_args_parser(), list(words), "torchrun")


def _parse(parser: argparse.ArgumentParser, argv: list[str], what: str) -> argparse.Namespace:
    """parser.parse_args(argv), failing the test with argparse's message instead of exiting."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{what} {' '.join(argv)}: the argument parser refuses it:\n{stderr.getvalue()}")


def package_argv(command: Command) -> list[str] | None:
    """The `higherhrnet` arguments a command runs (subcommand first), or None when it is something else."""
    words, cwd = list(command.words), command.cwd
    if words[0] == "higherhrnet":
        return words[1:]
    if _is_python(words[0]) and words[1:3] == ["-m", "higherhrnet"]:
        return words[3:]
    if _is_python(words[0]) and len(words) > 1:
        script = posixpath.normpath(posixpath.join(cwd, words[1]))
        if script in script_subcommands():
            return [script_subcommands()[script], *words[2:]]
    if words[0] == "torchrun":
        args = torchrun_arguments(words[1:])
        if args.module and args.training_script == "higherhrnet":
            return list(args.training_script_args)
        script = posixpath.normpath(posixpath.join(cwd, args.training_script))
        if script in script_subcommands():
            return [script_subcommands()[script], *args.training_script_args]
        pytest.fail(f"{command.id}: torchrun runs {args.training_script}, which is not a higherhrnet command")
    return None


@lru_cache(maxsize=None)
def parser_and_subparsers():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, subparsers.choices


def _placeholder(value: str) -> bool:
    """CFG, W, output/.../final_state.pth: stands for something the reader supplies."""
    return value.isupper() or "..." in value


def check_package_command(command: Command, argv: list[str]) -> None:
    """Parse as `higherhrnet` parses (options apart from KEY VALUE overrides), then check the overrides against
    the config (the whole config with its file when --cfg names one), the --cfg file and a weights name."""
    from higherhrnet import zoo
    from higherhrnet.config import get_cfg, load_cfg, merge_into, opts_to_dict

    parser, choices = parser_and_subparsers()
    if not argv or argv[0] not in choices:
        if command.block.markers.needs_names and not NAMES_LANDED:
            pytest.skip(f"`higherhrnet {argv[0] if argv else ''}` comes with registered-name loading "
                        f"(higherhrnet.hub), not installed here")
        pytest.fail(f"{command.id}: {argv[:1]} is not a higherhrnet subcommand ({', '.join(SUBCOMMANDS)})")
    rest, overrides = split_overrides(argv, value_options(choices[argv[0]]))
    args = _parse(parser, rest, "higherhrnet")
    base = REPO / command.cwd
    cfg_path = getattr(args, "cfg", None)
    if cfg_path and not _placeholder(cfg_path):
        assert (base / cfg_path).is_file(), f"{command.id}: --cfg {cfg_path} does not exist"
        load_cfg(base / cfg_path, overrides)
    else:
        merge_into(get_cfg(), opts_to_dict(overrides), source=f"{command.id} overrides")
    weights = getattr(args, "weights", None)
    if weights and re.fullmatch(r"[a-z][a-z0-9_]*", weights) and not command.block.markers.needs_names:
        assert weights in zoo.REGISTRY, f"{command.id}: --weights {weights} is not a registered name"


def setup_extras() -> set[str]:
    """The keys of setup.py's extras_require."""
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    block = re.search(r"extras_require=\{(.*?)\n    \},", setup, re.S)
    assert block, "setup.py: no extras_require found"
    return set(re.findall(r'^\s*"([\w-]+)":', block.group(1), re.M))


def check_pip(command: Command) -> None:
    """pip install: constraint files that exist, this package's extras (setup.py), known other packages."""
    words = list(command.words[1:])
    if words[:2] == ["-m", "pip"]:
        words = words[2:]
    assert words and words[0] == "install", f"{command.id}: only `pip install` is shown"
    extras = setup_extras()
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-c", "--constraint", "-r", "--requirement"):
            assert (REPO / command.cwd / words[i + 1]).is_file(), f"{command.id}: {words[i + 1]} does not exist"
            i += 2
            continue
        if word in ("-e", "--editable"):
            i += 1
            continue
        local = re.fullmatch(r"\.(?:\[([a-z,-]+)\])?", word)
        if local:
            unknown = set((local.group(1) or "").split(",")) - {""} - extras
            assert not unknown, f"{command.id}: no extra {sorted(unknown)} in setup.py (extras: {sorted(extras)})"
        elif not word.startswith("-"):
            assert word in OTHER_PACKAGES, f"{command.id}: pip install {word}: add it to OTHER_PACKAGES if meant"
        i += 1


def check_pytest(command: Command, words: list[str]) -> None:
    """python -m pytest: the paths exist, -m names markers pytest.ini registers."""
    markers = set(re.findall(r"^\s+(\w+):", (REPO / "pytest.ini").read_text(), re.M))
    i = 0
    while i < len(words):
        if words[i] == "-m":
            names = set(re.findall(r"\w+", words[i + 1])) - {"not", "and", "or"}
            assert names <= markers, f"{command.id}: unknown markers {names - markers}"
            i += 2
            continue
        if not words[i].startswith("-"):
            assert (REPO / command.cwd / words[i].split("::")[0]).exists(), f"{command.id}: {words[i]} not found"
        i += 1


def check_command(command: Command) -> str:
    """Check a command without running it; returns its kind."""
    words = list(command.words)
    argv = package_argv(command)
    if argv is not None:
        check_package_command(command, argv)
        return "package"
    if words[0] == "pip" or (_is_python(words[0]) and words[1:3] == ["-m", "pip"]):
        check_pip(command)
        return "pip"
    if _is_python(words[0]) and words[1:3] == ["-m", "pytest"]:
        check_pytest(command, words[3:])
        return "pytest"
    if _is_python(words[0]) and words[1:3] == ["-m", "venv"]:
        return "venv"
    if _is_python(words[0]) and len(words) > 1 and words[1].endswith(".py"):
        assert (REPO / command.cwd / words[1]).is_file(), f"{command.id}: {words[1]} does not exist"
        return "script"
    if words[0] == "bash":
        assert (REPO / command.cwd / words[1]).is_file(), f"{command.id}: {words[1]} does not exist"
        return "bash"
    if words[0] in EXTERNAL_COMMANDS:
        return "external"
    pytest.fail(f"{command.id}: the docs check does not know `{words[0]}`: teach tests/test_docs.py about it")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.id)
def test_shell_command_parses(command):
    check_command(command)


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if c.words[0] != "bash" and _is_python(c.words[0])
                                     and len(c.words) > 1 and c.words[1].endswith(".py")
                                     and package_argv(c) is None], ids=lambda c: c.id)
def test_script_options_exist(command):
    """A script that is not a subcommand (benchmarks/): every option shown is one its --help lists."""
    script = REPO / command.cwd / command.words[1]
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                            cwd=script.parent)
    assert result.returncode == 0, result.stderr
    for word in command.words[2:]:
        if word.startswith("--"):
            assert re.search(rf"{re.escape(word.split('=')[0])}\b", result.stdout), \
                f"{command.id}: {script.name} has no option {word}"


# ------------------------------------------------------------------ Python blocks

def _resolve(dotted: str):
    """Import / getattr along `higherhrnet.a.b`, or raise AttributeError naming the missing part."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[:i + 1]))
        except ModuleNotFoundError:
            raise AttributeError(f"{'.'.join(parts[:i])} has no {part}") from None
    return obj


def higherhrnet_names(tree: ast.AST) -> set[str]:
    """Every dotted higherhrnet name a block imports or uses (`higherhrnet.Predictor.from_config`, ...)."""
    names, aliases = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "higherhrnet":
                    names.add(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "higherhrnet"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "higherhrnet":
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [], node
            while isinstance(inner, ast.Attribute):
                chain.insert(0, inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                names.add(".".join([aliases[inner.id], *chain]))
    return names


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_block_compiles_and_its_names_exist(block):
    tree = ast.parse(block.text, filename=block.id)
    compile(tree, block.id, "exec")
    for name in sorted(higherhrnet_names(tree)):
        try:
            _resolve(name)
        except (AttributeError, ImportError) as e:
            pytest.fail(f"{block.id}: {name}: {e}")


# ------------------------------------------------------------------ running the blocks

def _runnable(block: Block) -> bool:
    """Not marked parse-only, and something to run: Python, or a command of this package or a script (install
    and test commands are only checked, never run here)."""
    if block.markers.parse_only:
        return False
    if block.language in ("python", "py"):
        return True
    for command in shell_commands(block):
        program, args = command.words[0], command.words[1:]
        if program in ("higherhrnet", "torchrun"):
            return True
        if _is_python(program) and args and (args[0].endswith(".py") or args[:2] == ("-m", "higherhrnet")):
            return True
    return False


def _copy_repo(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    for folder in RUN_FOLDERS:
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return work


def _run(argv: list[str], cwd: Path, env: dict, what: str) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (f"{what} exited with {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
                                    f"\n--- stderr\n{result.stderr[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in SHELL_BLOCKS + PYTHON_BLOCKS if _runnable(b)], ids=lambda b: b.id)
def test_block_runs(block, tmp_path):
    """The block as a reader runs it, in a folder holding copies of experiments/, models/, demo/ and tools/;
    `add` markers append their arguments to that subcommand (a smaller budget, said in the page)."""
    if block.markers.needs_names and not NAMES_LANDED:
        pytest.skip("needs registered-name loading (higherhrnet.hub), not installed here")
    work = _copy_repo(tmp_path)
    if block.language in ("python", "py"):
        script = tmp_path / "block.py"
        script.write_text(block.text, encoding="utf-8")
        _run([sys.executable, str(script)], work, dict(os.environ), block.id)
        return
    additions = dict(block.markers.additions)
    for command in shell_commands(block):
        kind = check_command(command)
        if kind in ("pip", "pytest", "venv"):
            continue                        # checked above; installing or testing again is not the block's point
        assert kind in ("package", "script"), f"{command.id}: {kind} command in a block that runs: mark it parse-only"
        words = list(command.words)
        argv = package_argv(command)
        extra = list(additions.get(argv[0], ())) if argv else []
        if words[0] == "higherhrnet":
            words = [sys.executable, "-m", "higherhrnet", *words[1:]]
        elif words[0] == "torchrun":
            words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
        else:
            words = [sys.executable, *words[1:]]
        _run(words + extra, work / command.cwd, {**os.environ, **dict(command.env)}, command.id)


# ------------------------------------------------------------------ pages, links, tables

def test_every_block_marker_is_understood():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for comment in re.findall(r"^<!--\s*docs-check:(.*)-->\s*$", text, re.M):
            parse_markers(comment)
        lines = [*text.splitlines(), ""]
        for i, line in enumerate(lines[:-1]):
            if line.startswith("<!--") and "docs-check:" in line and not lines[i + 1].startswith(("```", "<!--")):
                pytest.fail(f"{rel(page)}:{i + 1}: a docs-check comment must stand right above its code block")


def test_cli_reference_is_up_to_date():
    generator = runpy.run_path(str(REPO / "tools" / "make_cli_reference.py"), run_name="make_cli_reference")
    page = DOCS / "cli.md"
    assert page.is_file() and page.read_text(encoding="utf-8") == generator["cli_reference"](), \
        "docs/cli.md is stale: run tools/make_cli_reference.py"


def test_cli_reference_covers_every_subcommand():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in SUBCOMMANDS:
        assert f"## higherhrnet {name}\n" in text and f"usage: higherhrnet {name}" in text


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_links_between_pages_resolve():
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)                  # code spans: `f(x)[0](y)` is no link
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            name = linked.relative_to(REPO).as_posix() if linked.is_relative_to(REPO) else str(linked)
            if not linked.exists() and name in PAGES_FROM_OTHER_BRANCHES:
                continue
            assert linked.exists(), f"{rel(page)}: link to {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{rel(page)}: link to {target}: no such heading"


def test_index_lists_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not list {sorted(pages - linked)}"
    assert "](docs/index.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}.*?\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no section {heading!r}"
    return match.group(1)


def _ci_command(comment: str) -> str:
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return lines[lines.index(f'# README "{comment}"') + 1].strip()


def test_readme_is_short_and_runs_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    tests = [b for b in read_blocks(REPO / "README.md") if b.language == "bash" and "pytest" in b.text]
    assert [b.text.strip() for b in tests] == [_ci_command("Tests")]       # the one test command CI runs
    assert _ci_command("Install") in _section(readme, "Install")


def test_readme_command_table_lists_the_subcommands():
    table = _section((REPO / "README.md").read_text(encoding="utf-8"), "The command line")
    listed = set(re.findall(r"^\| `higherhrnet ([a-z-]+)`", table, re.M))
    assert set(SUBCOMMANDS) <= listed, f"README's command table lacks {sorted(set(SUBCOMMANDS) - listed)}"
    pending = set() if NAMES_LANDED else {"weights"}          # comes with registered-name loading
    assert listed - pending <= set(SUBCOMMANDS), f"README lists unknown subcommands {sorted(listed - set(SUBCOMMANDS))}"


def test_readme_model_table_matches_the_registry():
    from higherhrnet.zoo import REGISTRY

    table = _section((REPO / "README.md").read_text(encoding="utf-8"), "Models")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z0-9_]+)` \| ([^|]+) \|", table, re.M)}
    assert set(REGISTRY) <= set(rows), f"README's model table lacks {sorted(set(REGISTRY) - set(rows))}"
    for name, entry in REGISTRY.items():
        published = " / ".join(f"{ap:.1f}" for ap in (entry.ap, entry.ap_multiscale) if ap is not None)
        assert rows[name].startswith(published), f"{name}: README says {rows[name]!r}, zoo.py {published}"
