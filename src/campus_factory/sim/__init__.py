"""Simulation: synthetic inputs and benchmarks that drive the real planner and loop.

:mod:`.engine` (the discrete-event simulation), :mod:`.pool` (a simulated HTCondor pool),
:mod:`.sites` (simulated batch sites and clouds), :mod:`.loop` (the real factory on the
simulated clock), :mod:`.policies` (ours and the baselines), :mod:`.workloads` (SWF, CSV,
bursty generator), :mod:`.scenario` (scenario files, the demo campus), :mod:`.report`
(figures, charts), :mod:`.bench_provisioning`; :mod:`.synthetic` and :mod:`.bench_planner`
for the planner benchmark.
"""

__all__: list[str] = []
