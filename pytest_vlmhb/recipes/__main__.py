"""``python -m pytest_vlmhb.recipes``: print the recipes table (``--readme FILE``
rewrites the table between that README's recipes markers instead)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .lookup import recipe_table, with_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_vlmhb.recipes", description=__doc__)
    parser.add_argument("--readme", type=Path, help="rewrite the table in this README")
    args = parser.parse_args(argv)
    table = recipe_table()
    if args.readme is None:
        print(table, end="")
        return 0
    text = args.readme.read_text(encoding="utf-8")
    args.readme.write_text(with_table(text, table), encoding="utf-8")
    print(f"wrote the recipes table into {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
