"""Allows `python -m quench ...` as an alias of the `quench` console script."""

from quench.cli import main

raise SystemExit(main())
