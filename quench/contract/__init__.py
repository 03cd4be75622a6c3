"""The contract at the bottom of quench: what a stage is, what it writes, and how processes
are checked. Imports nothing of quench's, so every layer above can lean on it.

- `manifest`: the manifest.json a stage folder holds (the only thing later stages read).
- `stage`: the Stage base class, its context and result.
- `locks`: advisory file locks (cache entries, run leases, SQLite tracking-store creation).
- `processes`: whether a recorded process id is still alive (locks, leases, pending uploads).
"""
