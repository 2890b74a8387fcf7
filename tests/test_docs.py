"""The documentation: the site builds in strict mode, the README stays a front door, and every
link and every quoted command in README.md and docs/**/*.md names something that exists.

A quoted command is a line of a fenced code block (not a Python one; a line continued with a
backslash is one line) or an inline code span. In it:
- `entropy-rl SUB` (also `.venv/bin/entropy-rl SUB` and `-m entropy_rl SUB`): SUB is a
  subcommand of the CLI parser, and every `--option` after it, up to a `|`, `&&`, `;` or
  `>`, is an option of SUB;
- `section.field=value` after it: `section` is a field of `entropy_rl.config.Config` and
  `field` a field of that section's dataclass;
- `make TARGET`: TARGET is a target of the Makefile;
- a relative path under one of the repository's folders (experiments/, scripts/, ...) that
  ends in .yaml/.py/.sh/.jsonl exists (a glob matches something), except an output path (the
  word after `--out` or `>`).
Every failure names the file, the line and the token.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
REPO_DIRS = ("benchmarks", "docs", "examples", "experiments", "scripts", "src", "tests")
PATH_SUFFIXES = (".yaml", ".yml", ".py", ".sh", ".jsonl")
OUTPUT_FLAGS = ("--out", ">", ">>")
SEPARATORS = ("|", "||", "&&", ";", ">", ">>", "2>", "&>")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
OVERRIDE = re.compile(r"^([a-z_]+)\.([a-z_][a-z0-9_]*)=")
SKIPPED_SCHEMES = ("http://", "https://", "mailto:", "#")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def cli_parser() -> argparse.ArgumentParser:
    """The `entropy-rl` parser. `entropy_rl.cli` is its home only until the source tree's
    move to `entropy_rl.commands.cli` lands."""
    try:
        from entropy_rl.commands.cli import build_parser
    except ImportError:
        from entropy_rl.cli import build_parser
    return build_parser()


def subcommand_options() -> dict[str, set[str]]:
    """Each subcommand of the CLI and its option strings."""
    parser = cli_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: {option for action in sub._actions for option in action.option_strings}
        for name, sub in subparsers.choices.items()
    } | {"": {option for action in parser._actions for option in action.option_strings}}


def config_fields() -> dict[str, set[str]]:
    """Each section of the run config and its fields."""
    from entropy_rl.config import Config

    config = Config()
    return {
        section.name: {field.name for field in dataclasses.fields(getattr(config, section.name))}
        for section in dataclasses.fields(config)
        if dataclasses.is_dataclass(getattr(config, section.name))
    }


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE))


@dataclass
class Context:
    options: dict[str, set[str]]
    fields: dict[str, set[str]]
    make_targets: set[str]


@dataclass
class Snippet:
    """Code quoted in a Markdown file: one logical line of a code block or one inline span."""

    file: str
    line: int
    text: str


@dataclass
class Markdown:
    code: list[Snippet]  # code a reader may run: non-Python code blocks and inline spans
    links: list[Snippet]  # link targets, outside code


def parse_markdown(text: str, file: str) -> Markdown:
    """Split a Markdown file into its quoted code and its link targets, with line numbers."""
    code: list[Snippet] = []
    links: list[Snippet] = []
    fence: str | None = None
    language = ""
    pending: Snippet | None = None  # a code line continued by a backslash
    paragraph: list[tuple[int, str]] = []

    def prose_done() -> None:
        if not paragraph:
            return
        start = paragraph[0][0]
        joined = "\n".join(line for _, line in paragraph)
        for match in INLINE_CODE.finditer(joined):
            line = start + joined.count("\n", 0, match.start())
            span = " ".join(match.group(2).split())
            code.append(Snippet(file, line, span))
        outside = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), joined)
        for match in LINK.finditer(outside):
            line = start + outside.count("\n", 0, match.start())
            links.append(Snippet(file, line, match.group(1)))
        paragraph.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None:
            if opening:
                prose_done()
                fence, language = opening.group(1), opening.group(2).lower()
            elif line.strip():
                paragraph.append((number, line))
            else:
                prose_done()
            continue
        if opening and opening.group(1).startswith(fence) and not opening.group(2):
            fence = None
            pending = None
            continue
        if language in ("python", "py", "pycon"):
            continue
        stripped = strip_comment(line.strip())
        if stripped.startswith("$ "):
            stripped = stripped[2:]
        if pending is not None:
            pending.text += " " + stripped
        else:
            pending = Snippet(file, number, stripped)
        if pending.text.endswith("\\"):
            pending.text = pending.text[:-1].rstrip()
        else:
            code.append(pending)
            pending = None
    prose_done()
    return Markdown(code, links)


def strip_comment(line: str) -> str:
    """A shell line without its comment: from a `#` at the start or after a space."""
    match = re.search(r"(^|\s)#", line)
    return line[: match.start()].rstrip() if match else line


def token_path(token: str) -> str:
    """The path a word of a command may hold: quotes and punctuation stripped, and the value
    of a `key=path` word."""
    token = token.strip("'\"()[],:;`")
    if "=" in token:
        token = token.rsplit("=", 1)[1]
    return token


def command_problems(snippet: Snippet, context: Context) -> list[str]:
    """What a quoted command names that does not exist."""
    where = f"{snippet.file}:{snippet.line}"
    words = snippet.text.split()
    problems = []
    for i, word in enumerate(words):
        previous = words[i - 1] if i else ""
        executable = word == "entropy-rl" or word.endswith("/entropy-rl")
        module = word == "entropy_rl" and previous == "-m"
        if (executable or module) and i + 1 < len(words):
            problems += entropy_rl_problems(words[i + 1 :], where, context)
        if word == "make" and (i == 0 or previous in SEPARATORS):
            if i + 1 < len(words) and not words[i + 1].startswith("-"):
                target = words[i + 1].strip("`,;")
                if "=" not in target and target not in context.make_targets:
                    problems.append(f"{where}: `make {target}`: no such Makefile target")
        if previous in OUTPUT_FLAGS:
            continue
        path = token_path(word)
        first = path.split("/", 1)[0]
        if first in REPO_DIRS and "/" in path and path.endswith(PATH_SUFFIXES):
            if any(mark in path for mark in ("<", "{", "$", "...")):
                continue
            exists = any(ROOT.glob(path)) if "*" in path or "?" in path else (ROOT / path).exists()
            if not exists:
                problems.append(f"{where}: `{path}`: no such file in the repository")
    return problems


def entropy_rl_problems(words: list[str], where: str, context: Context) -> list[str]:
    """`words` = SUB and what follows it: SUB, its options and its config overrides."""
    sub = words[0].strip("`,;")
    if sub.startswith("-"):
        if sub.split("=")[0] not in context.options[""]:
            return [f"{where}: `entropy-rl {sub}`: no such option of entropy-rl"]
        return []
    if sub not in context.options:
        return [f"{where}: `entropy-rl {sub}`: no such subcommand"]
    problems = []
    for word in words[1:]:
        if word in SEPARATORS:
            break
        word = word.strip("`,;'\"")
        if word.startswith("--") and len(word) > 2:
            option = word.split("=", 1)[0]
            if option not in context.options[sub]:
                problems.append(f"{where}: `{option}`: not an option of `entropy-rl {sub}`")
        override = OVERRIDE.match(word)
        if override:
            section, field = override.groups()
            if section not in context.fields:
                problems.append(f"{where}: `{word}`: `{section}` is not a section of the config")
            elif field not in context.fields[section]:
                problems.append(f"{where}: `{word}`: `{field}` is not a field of `{section}`")
    return problems


@pytest.fixture(scope="module")
def context() -> Context:
    return Context(subcommand_options(), config_fields(), make_targets())


@pytest.fixture(scope="module")
def documents() -> dict[Path, Markdown]:
    return {path: parse_markdown(path.read_text(), relative(path)) for path in doc_files()}


def test_site_builds_in_strict_mode(tmp_path):
    assert importlib.util.find_spec("mkdocs"), "mkdocs is missing: pip install -e '.[docs]'"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_every_relative_link_exists(documents):
    problems = []
    for path, markdown in documents.items():
        for link in markdown.links:
            if link.text.startswith(SKIPPED_SCHEMES):
                continue
            target = link.text.split("#", 1)[0]
            if target and not (path.parent / target).exists():
                problems.append(f"{link.file}:{link.line}: link `{link.text}`: no such file")
    assert not problems, "\n".join(problems)


def test_every_quoted_command_names_what_exists(documents, context):
    problems = [
        problem
        for markdown in documents.values()
        for snippet in markdown.code
        for problem in command_problems(snippet, context)
    ]
    assert not problems, "\n".join(problems)
    readme = documents[ROOT / "README.md"]
    quoted = [s for s in readme.code if re.search(r"(^|[\s/])entropy-rl \w", s.text)]
    assert len(quoted) >= 8, "the README's quick starts quote the commands"


def test_the_checks_find_what_does_not_exist(context):
    """The checker on a page of broken references: each one is reported, with its line."""
    page = "\n".join(
        [
            "# A page",  # 1
            "See [this](no/such/page.md) and [that](https://example.com).",  # 2
            "```sh",  # 3
            "entropy-rl trian --out x",  # 4
            "entropy-rl fit log.jsonl --no-such-option 1 | grep --other",  # 5
            "entropy-rl train loss.mode=kl_cov loss.no_field=1 nosection.x=1 \\",  # 6
            "    --run-dir runs/x --config experiments/missing.yaml",  # 7
            "entropy-rl report runs/x --out experiments/new.yaml  # --not-an-option",  # 8
            "make no_target",  # 9
            "```",  # 10
            "Run `make demo`, then `entropy-rl watch --once x`, then `make nothing`.",  # 11
        ]
    )
    markdown = parse_markdown(page, "page.md")
    assert [(link.line, link.text) for link in markdown.links] == [
        (2, "no/such/page.md"),
        (2, "https://example.com"),
    ]
    problems = [p for s in markdown.code for p in command_problems(s, context)]
    assert problems == [
        "page.md:4: `entropy-rl trian`: no such subcommand",
        "page.md:5: `--no-such-option`: not an option of `entropy-rl fit`",
        "page.md:6: `loss.no_field=1`: `no_field` is not a field of `loss`",
        "page.md:6: `nosection.x=1`: `nosection` is not a section of the config",
        "page.md:6: `experiments/missing.yaml`: no such file in the repository",
        "page.md:9: `make no_target`: no such Makefile target",
        "page.md:11: `make nothing`: no such Makefile target",
    ]
