"""Workload readers (SWF, CSV) on small sample files, and the bursty generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from campus_factory.sim.workloads import (
    DEFAULT_SHAPES,
    JobSpec,
    WorkloadError,
    bursty_workload,
    load_workload,
    read_csv,
    read_swf,
    write_csv,
)

DATA = Path(__file__).parent / "data"


def test_swf_reads_the_fields_used_and_skips_jobs_that_never_ran() -> None:
    jobs = read_swf(DATA / "sample.swf")
    assert [j.submit_s for j in jobs] == [0, 60, 200, 320]  # rebased on the first job; 3 and 4 skipped
    first, quad, small, big = jobs
    assert (first.runtime_s, first.cpus, first.memory_mb, first.owner) == (600, 1, 1954, "u3")
    assert dict(first.attributes) == {"MaxWallTimeMins": "30"}
    assert (quad.cpus, quad.memory_mb, dict(quad.attributes)) == (4, 8192, {"MaxWallTimeMins": "60"})
    assert (small.cpus, small.memory_mb, small.attributes) == (2, 1000, ())  # allocated procs, used memory
    assert (big.cpus, big.memory_mb, big.owner) == (8, 32000, "user")


def test_swf_limits_and_errors(tmp_path: Path) -> None:
    assert len(read_swf(DATA / "sample.swf", max_jobs=2)) == 2
    bad = tmp_path / "bad.swf"
    bad.write_text("1 2 3\n")
    with pytest.raises(WorkloadError, match="18 fields"):
        read_swf(bad)
    with pytest.raises(WorkloadError, match="cannot read"):
        read_swf(tmp_path / "missing.swf")


def test_csv_reads_durations_requirements_and_owners() -> None:
    jobs = read_csv(DATA / "sample.csv")
    assert len(jobs) == 5
    assert jobs[0] == JobSpec(0, 600, 1, 2000, owner="alice")
    assert jobs[1].requirements == "TARGET.HasCVMFS =?= true"
    assert (jobs[2].runtime_s, jobs[2].cpus, jobs[2].memory_mb) == (3600, 4, 8000)
    assert jobs[3].submit_s == 90 and jobs[3].runtime_s == 1200


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("submit,runtime,cpus,memory_mb\n0,10m,1,2000\n5,soon,1,2000\n")
    with pytest.raises(WorkloadError, match=r"bad.csv:3"):
        read_csv(bad)
    bad.write_text("submit,cpus\n0,1\n")
    with pytest.raises(WorkloadError, match="runtime"):
        read_csv(bad)


def test_csv_round_trip_and_load_by_suffix(tmp_path: Path) -> None:
    jobs = bursty_workload(50, 1.0, seed=3)
    path = tmp_path / "w.csv"
    write_csv(jobs, path)
    again = load_workload(path)
    assert [(j.cpus, j.memory_mb, j.requirements) for j in again] == [
        (j.cpus, j.memory_mb, j.requirements) for j in jobs
    ]
    assert len(load_workload(DATA / "sample.swf")) == 4
    with pytest.raises(WorkloadError, match="no such"):
        load_workload(tmp_path / "none.csv")


def test_bursty_workload_is_deterministic_sorted_and_mixed() -> None:
    a = bursty_workload(2000, 24.0, seed=7, burst_at=((2.0, 0.25),))
    assert a == bursty_workload(2000, 24.0, seed=7, burst_at=((2.0, 0.25),))
    assert a != bursty_workload(2000, 24.0, seed=8, burst_at=((2.0, 0.25),))
    assert len(a) == 2000
    assert [j.submit_s for j in a] == sorted(j.submit_s for j in a)
    shapes = {(j.cpus, j.memory_mb, j.requirements) for j in a}
    assert len(shapes) >= 5
    in_burst = sum(1 for j in a if 7200 <= j.submit_s <= 7500)
    assert in_burst >= 500  # a quarter of the jobs within five minutes of hour 2
    assert all(j.runtime_s >= 60 for j in a)
    assert {s.name for s in DEFAULT_SHAPES} >= {"single", "cvmfs", "cloud-only", "no-cloud"}
