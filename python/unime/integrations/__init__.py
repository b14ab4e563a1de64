"""Adapters that let other evaluation frameworks drive a unime.Model.

Each adapter lives in its own module and imports its framework only when used, so `import unime`
never needs them: `from unime.integrations.mteb import as_mteb_model` (docs/mteb.md).
"""
