"""Serving: one owner of a server's (or client's) process life, vLLM's serving benchmark client
and the process-tree/NVML sampler, shared by every served engine and the stages using them."""
