"""The loop: observe → plan → act → record, every cycle, idempotently.

``factory`` runs the cycle; ``reconcile`` turns what sites and the pool report into ledger
events (pure); ``adjust`` applies operators' overrides and spend ceilings (``budget``, pure)
between the config and the plan; ``drains`` serves queued drain requests; ``usage`` records
which jobs ran on which pilot; ``assemble`` builds a factory from a config with the real parts.
"""
