"""`quench recipes` and `quench recipes copy NAME [DEST]`: the list of bundled recipes, examples
and sweeps, and a copy of one to edit (quench/recipe/catalog.py does the work)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `recipes` and `recipes copy` to the CLI."""
    recipes = sub.add_parser("recipes", help="list the bundled recipes, examples and sweeps; "
                             "`recipes copy NAME [DEST]` writes one to edit")
    actions = recipes.add_subparsers(dest="recipes_action")
    actions.add_parser("list", help="list them (the default)")
    copy = actions.add_parser("copy", help="copy a bundled recipe or sweep to edit")
    copy.add_argument("name", help="a name from `quench recipes`")
    copy.add_argument("dest", nargs="?", help="file or folder (default: ./NAME.yaml)")
    copy.add_argument("--force", action="store_true", help="overwrite an existing file")
    recipes.set_defaults(func=recipes_command)


def recipes_command(args: argparse.Namespace) -> int:
    """Prints the list, or copies one and prints where it went."""
    from quench.recipe.catalog import copy_bundled, render_list
    from quench.recipe.find import bundled_files

    if args.recipes_action == "copy":
        print(copy_bundled(args.name, args.dest, args.force))
        return 0
    print(render_list(bundled_files()))
    return 0
