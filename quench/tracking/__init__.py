"""Trackers record a pipeline invocation; chosen by `tracking.backend` (mlflow or none)."""
