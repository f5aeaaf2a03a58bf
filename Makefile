# make demo : set up everything from a fresh clone, then compress with the zoo model, fine-tune it -> compress -> inspect -> decode
# make test : set up everything from a fresh clone, then lint (ruff) and run the test suite
# make unit : the fast lane: lint and the tests that start no Ray, no server and no training run
# make e2e  : lint and the tests that do (Ray, S3, Prometheus, training runs); make lint: ruff alone
PYTHON ?= python3
VENV   ?= .venv
# CPU wheel here; set TORCH_SPEC="torch==2.13.0 --index-url ..." for another build.
TORCH_SPEC ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aec-installed
DEMO   ?= demo-output
PYTEST_ARGS ?=
# the demo's mixed folder: a package tree the set-up installs
FOLDER ?= $(shell test -x $(BIN)/python && $(BIN)/python -c "import os, scipy.io; print(os.path.dirname(scipy.io.__file__))" 2>/dev/null)

.PHONY: setup demo lint test unit e2e bench zoo-data clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned resolve would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	# Debian's prometheus: the metrics test scrapes a real server (needs root or sudo; skipped if present)
	command -v prometheus >/dev/null || { SUDO=$$(command -v sudo || true); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	rm -rf $(DEMO)
	$(BIN)/aec sample-data $(DEMO)/photos --count 400
	$(BIN)/aec models zoo
	$(BIN)/aec compress jobs/specs/photos-compress-zoo.yaml
	$(BIN)/aec train jobs/specs/photos-train.yaml
	$(BIN)/aec compress jobs/specs/photos-compress.yaml
	$(BIN)/aec inspect $(DEMO)/latents
	$(BIN)/aec inspect $(DEMO)/latents --history
	$(BIN)/aec query $(DEMO)/latents \
	  "SELECT modality, count(*) AS files, sum(bytes) AS bytes_in, sum(payload_bytes) AS bytes_out, sum(bytes) / sum(payload_bytes) AS ratio FROM latents GROUP BY 1"
	$(BIN)/aec decode $(DEMO)/latents --out $(DEMO)/restored --originals $(DEMO)/photos
	# the whole archive: a real mixed folder the set-up installed (scipy's io package: code, binaries,
	# WAV sounds, MATLAB data), every file by its best codec, restored identical, beside tar | xz -9e
	$(BIN)/aec compress jobs/specs/archive.yaml --set input=$(FOLDER)
	$(BIN)/aec inspect $(DEMO)/archive
	$(BIN)/aec decode $(DEMO)/archive --out $(DEMO)/archive-restored
	diff -r --no-dereference $(FOLDER) $(DEMO)/archive-restored && echo "restored: identical to $(FOLDER)"
	@echo "on disk: aec $$(du -sb $(DEMO)/archive | cut -f1) bytes; tar | xz -9e $$(tar -C $(FOLDER)/.. -cf - $$(basename $(FOLDER)) | xz -9e -T2 | wc -c) bytes; folder $$(du -sb --apparent-size $(FOLDER) | cut -f1) bytes"

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: lint
	$(BIN)/python -m pytest -m "not servers" $(PYTEST_ARGS)

e2e: lint
	$(BIN)/python -m pytest -m servers $(PYTEST_ARGS)

# the zoo's training data and the held-out sets: photos and text from Debian packages
# (apt-get download + dpkg -x into build/debs: no root, nothing installed)
zoo-data: setup
	$(BIN)/python -m recipes.image_data
	$(BIN)/python -m recipes.text_data --python-doc

# throughput, memory, training, rate-distortion (zoo models vs JPEG/WebP/AVIF, gzip/xz/zstd/brotli):
# ~1 h on 2 cores; writes docs/bench/*.json and *.png
bench: setup zoo-data
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.table_scale
	$(BIN)/python -m bench.restore
	$(BIN)/python -m bench.training
	$(BIN)/python -m bench.rd_classic
	$(BIN)/python -m bench.lossless
	$(BIN)/python -m bench.image_rd
	$(BIN)/python -m bench.text_rd
	$(BIN)/python -m bench.plots

clean:
	rm -rf $(DEMO) .pytest_cache
