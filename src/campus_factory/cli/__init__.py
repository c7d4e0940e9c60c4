"""The ``campus-factory`` command line (noun-verb)."""
