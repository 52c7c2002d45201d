"""README.md and docs/: every relative link resolves, and every `cmlite ...` command shown in a fenced block parses
with the real argument parser, so the pages cannot drift from the CLI."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cmlite.apps.cli import build_parser
from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _fenced(text: str) -> list[str]:
    """The lines of the ``` blocks that are shell (bash/sh/console, or no language)."""
    out, inside, shell = [], False, False
    for line in text.splitlines():
        if line.startswith("```"):
            inside, shell = not inside, line.strip("`").strip() in ("", "bash", "sh", "shell", "console")
            continue
        if inside and shell:
            out.append(line)
    return out


def commands(text: str) -> list[str]:
    """Each `cmlite ...` command of the page's shell blocks, continuation lines joined, comments and the rest of a
    `&&` / `|` chain cut off."""
    joined, buf = [], ""
    for line in _fenced(text):
        buf += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            joined.append(buf)
            buf = ""
    out = []
    for line in joined:
        line = re.sub(r"(^|\s)#.*$", "", line)  # a shell comment (a '#' inside a word, synth@30#SEED, stays)
        if not re.search(r"(^|[\s/])cmlite\s", line):  # not a command of ours (a folder tree, pip, ...)
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            i = next((k for k, w in enumerate(words) if w == "cmlite" or w.endswith("/cmlite")), None)
            if i is not None and (i == 0 or words[i - 1] not in ("pip", "install")):
                out.append(" ".join(shlex.quote(w) for w in words[i:]))
    return out


def test_the_pages_exist_and_the_readme_is_a_front_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert {p.name for p in PAGES[1:]} >= {"quantize.md", "camera.md", "speed.md", "pick.md", "bench.md",
                                          "tensorrt.md", "triton.md", "devices.md", "reliability.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: {target} does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_parses(page):
    parser = build_parser()
    shown = commands(page.read_text())
    for cmd in shown:
        argv = shlex.split(cmd)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            raise AssertionError(f"{page.name}: `{cmd}` does not parse with cmlite's parser") from e
    if page.name in ("README.md", "camera.md", "quantize.md", "bench.md", "pick.md", "triton.md"):
        assert shown, f"{page.name} shows no cmlite command"


def test_the_checker_finds_commands_and_catches_a_wrong_one():
    text = "```bash\ncmlite camera --source 0 \\\n  --model m  # a comment\ncmlite demo --nope && ls\n```\n"
    assert commands(text) == ["cmlite camera --source 0 --model m", "cmlite demo --nope"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--nope"])
