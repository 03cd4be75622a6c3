"""Allows `python -m pipeline ...` as an alias of the `quench` console script."""

from pipeline.cli import main

raise SystemExit(main())
