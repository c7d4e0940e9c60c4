# campus-factory — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit lint typecheck bench bench-loop bench-slurm docs chaos clean venv

venv: $(STAMP)

# Create (or reuse) the project's virtualenv and install the package with its test extras.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

## demo: a simulated campus (two clusters and one cloud) takes a burst of jobs; report and chart in .demo/
demo: $(STAMP)
	$(BIN)/campus-factory demo --out .demo

## test: lint, type check and the whole suite (fixtures start the services they need); then fail
## if a process the suite started is still running (tests/services/leftovers.py: baseline first)
LEFTOVERS := $(VENV)/.leftovers-baseline.json
test: $(STAMP) lint typecheck docs
	@run=cf-$$$$-$$(date +%s); $(BIN)/python tests/services/leftovers.py baseline $(LEFTOVERS) || exit 1; \
	CF_TEST_RUN=$$run $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	$(BIN)/python tests/services/leftovers.py check $(LEFTOVERS) --run $$run || rc=1; \
	exit $$rc

## unit: only the tests that need no service
unit: $(STAMP)
	$(BIN)/python -m pytest -m "not (slurm or sge or pbs or ssh or htcondor or ec2 or openstack or postgres or browser)" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: writes docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m campus_factory.cli.main bench all --write docs/benchmarks.md
	$(BIN)/python -m campus_factory.cli.main bench provisioning --write docs/benchmarks.md --plot docs/img/provisioning.png
	$(MAKE) bench-loop
	$(MAKE) bench-slurm

## bench-slurm: 1,000 pilots at the test suite's Slurm cluster (started here, under the service lock)
SLURM_BENCH ?= /tmp/cf-bench-slurm
bench-slurm: $(STAMP)
	flock /tmp/cf-services.lock sh -c 'set -e; \
	  export CLUSTER=cfbench PORT_BASE=$${CF_BENCH_SLURM_PORT:-26817} NNODES=2 NODE_CPUS=4 NODE_MEM=4000 BASE=$(SLURM_BENCH); \
	  trap "bash tests/services/slurm-down.sh >/dev/null 2>&1; rm -rf $(SLURM_BENCH)" EXIT; \
	  bash tests/services/slurm-up.sh >/dev/null; \
	  SLURM_CONF=$(SLURM_BENCH)/etc/slurm.conf $(BIN)/python -m campus_factory.cli.main bench slurm --pilots 1000 --write docs/benchmarks.md'

## bench-loop: the loop at 1k/10k/50k live pilots on SQLite and a private PostgreSQL (under the service lock)
PG_BENCH ?= /tmp/cf-bench-pg
bench-loop: $(STAMP)
	flock /tmp/cf-services.lock sh -c 'set -e; \
	  port=$$($(BIN)/python -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])"); \
	  rm -rf $(PG_BENCH); mkdir -p $(PG_BENCH); chmod 755 $(PG_BENCH); \
	  trap "BASE=$(PG_BENCH)/pg PORT=$$port bash tests/services/postgres-down.sh >/dev/null 2>&1; rm -rf $(PG_BENCH)" EXIT; \
	  BASE=$(PG_BENCH)/pg PORT=$$port bash tests/services/postgres-up.sh >/dev/null; \
	  $(BIN)/python -m campus_factory.cli.main bench loop-table --write docs/benchmarks.md \
	    --postgres-url postgresql+psycopg://postgres@127.0.0.1:$$port/postgres'

## chaos: SIGKILL the factory at random points against real Slurm and EC2 (moto); RUNS=N
RUNS ?= 20
chaos: $(STAMP)
	$(BIN)/python tests/chaos/harness.py --runs $(RUNS)

## docs: build the documentation site (warnings are errors)
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
