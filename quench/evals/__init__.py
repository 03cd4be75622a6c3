"""quench's lm-eval task definitions (bundled `evals/`) and the adapters they name.

A YAML under `evals/` is an lm-eval task config. Those that mirror a built-in task carry a
`quench:` block naming an adapter (`<module>.<function>` in this package) and the mirror
files it reads (relative to $QUENCH_MIRROR), and may name the excerpt quench bundles for it
(`bundled:`, used when the mirror lacks the files); quench/evals/render.py turns them into plain
lm-eval YAMLs with absolute paths at run time.
"""
