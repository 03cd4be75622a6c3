"""`quench setup`: creates what the quench home holds (quench/home.py): bundled models and the
served engines' environments, each idempotently, with its tools' output in a log file."""
