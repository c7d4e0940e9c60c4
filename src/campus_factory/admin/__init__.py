"""Tools a site admin runs around the loop: ``init`` and ``doctor``.

``probe`` finds what this host has (the pool's collector and schedds, the batch systems that
answer); ``initconf`` renders the commented config ``init`` writes; ``doctor`` holds the pure
verdicts and ``doctor_io`` runs each check against the real pool and sites.
"""
