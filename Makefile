# The two commands a new user needs: `make run` and `make test`.
# Both create a local virtualenv (.venv) on first use; nothing is installed system-wide.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test lint bench bench-soak install clean browser cluster-deps cluster-test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[embedded,test]'
	@touch $(STAMP)

install: $(STAMP)

## Run the whole platform: embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are set),
## migrations, the API and a worker. Ctrl-C stops everything.
run: $(STAMP)
	$(BIN)/conduit run

## The browser tests drive Debian's Chromium: install it when missing and apt is usable (as root, e.g. CI);
## otherwise they are skipped with a line saying how to enable them.
browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || \
	  echo "could not install chromium: the browser tests will be skipped"; \
	fi

## The deployment tests (PgBouncer, Redis primary/replica/Sentinel) and the cluster harness (bench/cluster: hosts
## from network namespaces, as root) run Debian's iproute2, iptables, haproxy, pgbouncer and redis-server: install
## the missing ones when apt is usable (as root, e.g. CI); otherwise those tests are skipped with the reason.
CLUSTER_PACKAGES := iproute2 iptables haproxy pgbouncer redis-server
cluster-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  ! { command -v tc && command -v iptables && command -v haproxy && command -v pgbouncer && \
	      command -v redis-server; } >/dev/null 2>&1; then \
	  echo "installing the cluster harness's packages"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq $(CLUSTER_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(CLUSTER_PACKAGES) >/dev/null 2>&1; } || \
	  echo "could not install $(CLUSTER_PACKAGES): the cluster tests will be skipped"; \
	fi

## Build the simulated cluster, run every fault scenario and the throughput by worker hosts, tear it down and
## record the figures in bench/RESULTS.md (as root). CLUSTER_ARGS="--short" or "--only a,g" for less.
cluster-test: $(STAMP) cluster-deps
	$(BIN)/python -m bench.cluster $(CLUSTER_ARGS)

## Run the test suite against real PostgreSQL and Redis (embedded unless the URLs are set).
test: $(STAMP) browser cluster-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api worker shared cli tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.core
	$(BIN)/python -m bench.providers
	$(BIN)/python -m bench.ratelimits
	$(BIN)/python -m bench.openai_compat
	$(BIN)/python -m bench.openai_features
	$(BIN)/python -m bench.observability --e2e
	$(BIN)/python -m bench.events
	$(BIN)/python -m bench.media_inputs
	$(BIN)/python -m bench.moderation
	$(BIN)/python -m bench.settlements
	$(BIN)/python -m bench.sustained $(if $(BASELINE),--baseline $(BASELINE))

## The 10-minute soak on one account (tasks and chat mixed); SOAK_MINUTE_S=10 for a short form.
bench-soak: $(STAMP)
	$(BIN)/python -m bench.sustained --only soak --minute-seconds $(or $(SOAK_MINUTE_S),60) \
	  $(if $(BASELINE),--baseline $(BASELINE))

clean:
	rm -rf $(VENV) .conduit
