"""`quench compare`: a table, a Markdown report and a Pareto plot of runs found in MLflow.

Runs are picked by experiment, tags and model, or named one by one (run ids or registry
aliases). It fails closed: a store, experiment or filter that yields no run is an error.
"""
