# Every target sets up what it needs by itself and can be run again safely.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Datasets and weights cache (shared by all checkouts on a machine).
export IMGCLS_CACHE ?= $(HOME)/.cache/imgcls
# Quieter TensorFlow logs; the work is the same.
export TF_CPP_MIN_LOG_LEVEL ?= 2
.DEFAULT_GOAL := help
PROFILE ?= quick
# Your runs go to out/ (untracked). The committed results/ are refreshed only when asked for:
# make bench OUT=results/quick, make train RESULTS=results/train/mnist_cnn,
# make distribute-scaling OUT=results/distribute.
OUT ?= out/$(PROFILE)

# GPU machines: TensorFlow's CUDA 12 wheels plus the CUDA 12 build of onnxruntime-gpu in place of
# the CPU onnxruntime (both wheels ship the same 'onnxruntime' module, so only one may be installed).
setup-gpu: setup
	$(PY) -m pip install -q -e '.[gpu]'
	$(PY) -m pip uninstall -q -y onnxruntime onnxruntime-gpu
	$(PY) -m pip install -q 'onnxruntime-gpu[cuda,cudnn]>=1.24,<1.27'

.PHONY: setup-gpu setup setup-test data test test-all bench train artifacts streams op-profile perf-check perf-proof accuracy-check accuracy-gate accuracy-proof distribute-scaling preview clean help

help:
	@echo "make bench   - set up, fetch data, run the default (quick, CPU) benchmark into $(OUT)"
	@echo "make test    - set up, fetch data, run the test suite (make test-all: with the long real runs)"
	@echo "make setup | data | preview | train | artifacts | streams | op-profile | perf-check | accuracy-check | clean"

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# The test tools and the PyTorch reference (a CPU build of torch) only where the tests run.
setup-test: $(STAMP).test

$(STAMP).test: $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP).test

data: setup
	$(PY) -m bench data fetch mnist fashion_mnist cifar10
	$(PY) -c "from bench.plumbing.console import quiet_tensorflow; quiet_tensorflow(); from zoo import sample_photos as s, imagenet_classes as c, efficientnet_lite as e; [s.path(n) for n in s.names()]; c.class_names(); e.imagenet_weights_path()"

preview: data
	$(PY) -m bench data preview mnist --out out/preview/mnist.png
	$(PY) -m bench data preview fashion_mnist --out out/preview/fashion_mnist.png
	$(PY) -m bench data preview cifar10 --out out/preview/cifar10.png

# Two pytest workers, one test file each at a time (module fixtures are built once); the long real
# runs (@pytest.mark.slow: every zoo export, multi-worker jobs, bfloat16 training) only in test-all.
PYTEST_WORKERS ?= 2
test: data setup-test
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

test-all: data setup-test
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

bench: data
	$(PY) -m bench run --profile $(PROFILE) --out $(OUT) $(if $(RESUME),--resume,--fresh)

# Trains the MNIST recipe; rerunning continues an interrupted run or re-evaluates a finished one.
# RECIPE=NAME picks another recipe (python -m bench train recipes lists them). SEEDS=3 runs it once per
# seed 0, 1, 2 (SEEDS=0,4,7: those seeds; seed 0 in runs/NAME, seed S in runs/NAME/seedS) and writes
# the spread to runs/NAME/spread.{json,md} (accuracy.toml bounds: python -m bench train propose-bounds).
# RESULTS=DIR also copies the run record (and spread) there (RESULTS=results/train/$(RECIPE) refreshes the
# committed one).
comma := ,
RECIPE ?= mnist_cnn
SEEDS ?=
train: data
	$(PY) -m bench train --recipe $(RECIPE) --out runs/$(RECIPE) --resume --quiet $(if $(RESULTS),--results $(RESULTS)) $(if $(SEEDS),--seeds $(SEEDS))

# Perf gate (bench/gate): BASE=REV measures REV in a temporary git worktree, interleaved with this
# tree; without BASE the stored results/baselines/perf.json. QUICK=1: the CI version (~1 min).
BASE ?=
perf-check: setup-test
	$(PY) -m bench perf-check $(if $(BASE),--base $(BASE)) $(if $(QUICK),--quick) $(if $(REPORT_ONLY),--report-only)

# The quick gate's proof on real code regressions (bench/gate/regressions.py) and identity runs,
# about 1 min per trial: IDENTITY=40 PER_REGRESSION=3 by default; APPEND=1 adds this machine's or this
# session's trials to results/gate/code_proof (the false-alarm rate needs 40 runs on 2 machines).
IDENTITY ?= 40
PER_REGRESSION ?= 3
perf-proof: setup-test
	$(PY) -m bench.gate.code_proof --quick --identity $(IDENTITY) --per-regression $(PER_REGRESSION) $(if $(APPEND),--append) --out results/gate/code_proof

accuracy-check: setup data
	$(PY) -m bench accuracy-check

# The accuracy gate CI runs: the CI recipe (mnist_tiny, about 300 steps, no wall-clock budget) trained
# fresh and checked against its 5-seed bounds; fails when training quality regresses.
# make accuracy-proof: the same gate on unchanged code and on injected bugs (results/gate/accuracy_proof).
GATE_RUN ?= out/accuracy-gate/mnist_tiny
accuracy-gate: setup data
	rm -rf $(GATE_RUN)
	$(PY) -m bench train --recipe mnist_tiny --out $(GATE_RUN) --seed 0 --quiet
	$(PY) -m bench accuracy-check --strict --only mnist_tiny --run mnist_tiny=$(GATE_RUN)

accuracy-proof: setup data
	$(PY) -m bench accuracy-proof --seeds 0,1,2 --out $(if $(filter command line environment,$(origin OUT)),$(OUT),out/accuracy_proof)

# Scaling efficiency of tf.distribute on this machine (logical CPU devices, local workers), into
# out/distribute unless OUT is given.
distribute-scaling: data
	$(PY) -m bench distribute scaling --out $(if $(filter command line environment,$(origin OUT)),$(OUT),out/distribute) --repeats 5 --intra-op-threads 0 1

# Exports every model that `make train` produced (RUNS=NAME,NAME: those runs only) in every format
# and precision, each verified against its own test split (float32 by parity, reduced precisions by
# their top-1 on the whole test set); the equal-budget table's runs/equal_budget/ARCH are
# artifacts/equal_budget_ARCH. RESULTS=1 also copies each manifest and report to
# results/export/NAME, the committed record of what each precision costs on each checkpoint (a refused
# export's to results/export/NAME_rejected: the costs it measured are still evidence). One refused
# export does not stop the others; the target fails at the end, naming them.
FORMATS ?= savedmodel,onnx,onnx_fp16,onnx_int8,openvino,openvino_int8,litert,litert_int8
RUNS ?=
artifacts: data
	@ls runs/*/model.keras runs/equal_budget/*/model.keras 2>/dev/null | grep -q . || { echo "no runs/*/model.keras yet: run make train first"; exit 1; }
	@failed=; for m in $(if $(RUNS),$(foreach r,$(subst $(comma), ,$(RUNS)),runs/$(r)/model.keras),$(wildcard runs/*/model.keras runs/equal_budget/*/model.keras)); do \
	  run=$$(dirname $${m#runs/} | tr / _); \
	  test -f $$m || { echo "$$m does not exist: train it first (make train RECIPE=$$run)"; exit 1; }; \
	  rm -rf artifacts/$$run.failed; \
	  $(PY) -m export $$m --formats $(FORMATS) --out artifacts/$$run --overwrite --quiet || { \
	    rc=$$?; [ $$rc -eq 130 ] && exit 130; failed="$$failed $$run"; \
	    if [ -n "$(RESULTS)" ] && [ -f artifacts/$$run.failed/manifest.json ]; then mkdir -p results/export/$${run}_rejected && \
	      cp artifacts/$$run.failed/manifest.json artifacts/$$run.failed/report.txt results/export/$${run}_rejected/; fi; \
	    continue; }; \
	  if [ -n "$(RESULTS)" ]; then mkdir -p results/export/$$run && \
	    cp artifacts/$$run/manifest.json artifacts/$$run/report.txt results/export/$$run/; fi; \
	done; \
	test -z "$$failed" || { echo "not exported:$$failed (a refused export's files and report are in artifacts/NAME.failed)"; exit 1; }

# Throughput at batch 1 of one exported run's files (make artifacts first): one worker on every core,
# one worker with one thread, one pinned worker per core; into out/streams/RUN unless OUT is given.
streams: setup
	@test -f artifacts/$(RUN)/manifest.json || { echo "artifacts/$(RUN) does not exist: make artifacts RUNS=$(RUN) first (RUN=NAME of a runs/ folder)"; exit 1; }
	$(PY) -m bench streams artifacts/$(RUN) --out $(if $(filter command line environment,$(origin OUT)),$(OUT),out/streams/$(RUN))

# onnxruntime's kernel time per operator kind, float32 beside int8, of one exported run (one thread);
# into out/op-profile/RUN unless OUT is given.
op-profile: setup
	@test -f artifacts/$(RUN)/manifest.json || { echo "artifacts/$(RUN) does not exist: make artifacts RUNS=$(RUN) first (RUN=NAME of a runs/ folder)"; exit 1; }
	$(PY) -m bench op-profile artifacts/$(RUN) --out $(if $(filter command line environment,$(origin OUT)),$(OUT),out/op-profile/$(RUN))

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
