"""Versioned schema migrations, one SQL file per version and backend (``NNNN_name.sql``).

Applied in order at start-up by :meth:`bot.store.Store.open`; the version of each applied file is
recorded in ``schema_migrations`` so a restart applies only what is new.
"""
