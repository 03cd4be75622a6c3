"""cli.md: every `quench` command, from the argparse parser."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from .common import anchor, code, md, page, table

COLUMNS = 100  # argparse's terminal width, for usage lines that wrap the same everywhere


@contextmanager
def fixed_columns(width: int) -> Iterator[None]:
    """argparse wraps at $COLUMNS (read when a formatter is made): fixed for the page."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _subcommands(parser: argparse.ArgumentParser
                 ) -> list[tuple[str, argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return []


def _machine_paths() -> dict[str, str]:
    """Absolute paths of this machine that --help texts show, and what the page says instead."""
    from quench.setup.cli import _default_home

    return {_default_home(): "the per-user data folder, e.g. ~/.local/share/quench on Linux"}


def _clean(text: str, paths: dict[str, str]) -> str:
    for path, words in paths.items():
        text = text.replace(path, words)
    return text


def parser_block(parser: argparse.ArgumentParser, help_text: str, depth: int,
                 paths: dict[str, str]) -> list[str]:
    formatter = parser._get_formatter()
    prog = parser.prog
    body = [f"{'#' * depth} {code(prog)} {{#{anchor(prog)}}}"]
    for text in (help_text, parser.description):
        if text:
            body.append(md(_clean(text, paths)))
    body.append("```text\n" + _clean(parser.format_usage().strip(), paths) + "\n```")
    for group in parser._action_groups:
        rows = []
        for action in group._group_actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            invocation = formatter._format_action_invocation(action)
            rows.append([code(invocation), md(_clean(formatter._expand_help(action)
                                                     if action.help else "", paths))])
        if rows:
            body.append(f"{group.title[:1].upper()}{group.title[1:]}:")
            body.append(table(["argument", "description"], rows))
    subs = _subcommands(parser)
    if subs:
        body.append("Commands:")
        body.append(table(["command", "description"],
                          [[f"[`{sub.prog}`](#{anchor(sub.prog)})", md(_clean(h, paths))]
                           for _, sub, h in subs]))
    return body


def walk_parsers(parser: argparse.ArgumentParser, help_text: str = "", depth: int = 2
                 ) -> Iterator[tuple[argparse.ArgumentParser, str, int]]:
    """The parser and its subcommands, depth first; `quench` and its commands are `##`
    sections, a command's subcommands `###`."""
    yield parser, help_text, depth
    for _, sub, text in _subcommands(parser):
        yield from walk_parsers(sub, text, depth + 1 if " " in parser.prog else depth)


def cli_page() -> str:
    from quench.cli import build_parser

    paths = _machine_paths()
    with fixed_columns(COLUMNS):
        parser = build_parser()
        body = ["Every `quench` command with its arguments and options, as `quench COMMAND "
                "--help` prints them. Exit codes: 0 success, 1 a failed check or run (a gate "
                "regression, no passing sweep trial), 2 bad input or a setup problem, 128 + the "
                "signal number when interrupted (130 for Ctrl-C)."]
        for sub, text, depth in walk_parsers(parser):
            body += parser_block(sub, text, depth, paths)
    return page("Command line", "the argparse parser of `quench/cli.py` (`build_parser()`)",
                body)

