"""The stage runner: cache keys, atomic stage directories, the pipeline graph and progress."""
