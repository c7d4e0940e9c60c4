"""What runs inside a pilot's batch job or VM."""

from .script import PilotScript, check_directive, render_batch_script

__all__ = ["PilotScript", "check_directive", "render_batch_script"]
