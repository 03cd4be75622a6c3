"""The CI quality gate: a candidate run against a baseline run, metric by metric, with intervals.

data.py fetches each run's report and per-sample artifacts from MLflow; stats.py holds the
block bootstrap and McNemar; checks.py decides PASS / FAIL / INCONCLUSIVE per metric and
verdict.py combines them; render.py writes the verdict and record.py logs it to MLflow;
gate_main() in cli.py ties them together for `quench gate`.
"""
