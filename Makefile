# moodcast: `make demo` runs the daemon on the bundled sample video; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/fer2013
VOTES ?= ../shared/data/ferplus/votes.csv
RUN ?= runs/train
MODEL ?= models/emotion-int8.tflite
VIDEO ?= samples/one-face.mp4
OUT ?= runs/demo
.DEFAULT_GOAL := help
EXTRA ?=   # extra training faces in <class>/ folders (the daemon's feedback.dir), space-separated

help:                           ## this list
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/:[^#]*## /\t/' | expand -t 20

.PHONY: help setup setup-device demo run test test-slow lint typecheck format train train-resume train-long train-long-resume convert bench samples scenes calibrate clean

$(VENV)/.device: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.device
	$(VENV)/bin/pip install --quiet -e '.[train,dev]'
	touch $@

setup-device: $(VENV)/.device   ## the daemon's dependencies only (no TensorFlow)
setup: $(VENV)/.dev             ## everything: daemon, training, tests

# A run that fails before its first event removes the empty events.jsonl that tee made: no empty "result".
demo: SHELL := /bin/bash
demo: .SHELLFLAGS := -o pipefail -c   # the daemon's exit status, not tee's, decides
demo: $(VENV)/.device           ## the daemon on the sample video: annotated video + events on stdout
	@rm -f $(OUT)/annotated.mp4 $(OUT)/events.jsonl && mkdir -p $(OUT)
	$(PY) -m device --input $(VIDEO) --no-realtime --model-path $(MODEL) \
		--display-backend video --display-video-path $(OUT)/annotated.mp4 --events - | tee $(OUT)/events.jsonl \
		|| { status=$$?; [ -s $(OUT)/events.jsonl ] || rm -f $(OUT)/events.jsonl; exit $$status; }
	@echo "annotated video: $(OUT)/annotated.mp4   events: $(OUT)/events.jsonl"

run: $(VENV)/.device            ## the daemon with a config file: make run CONFIG=moodcast.toml
	$(PY) -m device $(if $(CONFIG),--config $(CONFIG))

test: $(VENV)/.dev              ## the quick suite (about a minute)
	$(PY) -m pytest -q

test-slow: $(VENV)/.dev         ## the tests that train, deploy, drive a browser or an RTSP camera (~10 min)
	$(PY) -m pytest -q -m slow

lint: $(VENV)/.dev              ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev          ## mypy on device/, train/, convert/ and tools/ (settings in pyproject.toml)
	$(VENV)/bin/mypy

format: $(VENV)/.dev            ## ruff format
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

TRAIN = $(PY) -m train --data $(DATA) --votes $(VOTES) --out $(RUN) $(foreach dir,$(EXTRA),--extra-data $(dir))
LONG = --epochs 120 --ema-momentum 0.999 --patience 30

train: $(VENV)/.dev             ## 40 epochs, ~60-90 min on 2 cores with AVX512-BF16; resumable with make train-resume
	$(TRAIN)

train-resume: $(VENV)/.dev      ## continue an interrupted make train (same variables)
	$(TRAIN) --resume

train-long: $(VENV)/.dev        ## the shipped recipe: 120 epochs with weight averaging, ~4 h on a 2-core CPU; make train-long-resume continues it
	$(TRAIN) $(LONG)

train-long-resume: $(VENV)/.dev ## continue an interrupted make train-long (same variables)
	$(TRAIN) $(LONG) --resume

convert: $(VENV)/.dev           ## RUN's model to int8 TFLite, verified and calibrated, with its card and report
	$(PY) -m convert --model $(RUN)/model.keras --training $(RUN)/training.json --data $(DATA) --votes $(VOTES) \
		--crop models/crop.json --out $(MODEL)

bench: $(VENV)/.dev             ## moodcast against the reference pipeline on every clip (~8 min)
	$(PY) -m tools.bench --out runs/bench
	$(PY) -m tools.web_load --out runs/bench

samples: $(VENV)/.dev           ## remake the sample videos and their ground truth
	$(PY) -m tools.make_sample_video --data $(DATA) --votes $(VOTES) --out samples --verify models/crop.json

scenes: $(VENV)/.dev            ## the benchmark's scene clips (samples/scenes): FER2013 faces on real photographs
	$(PY) -m tools.make_scene_clips --data $(DATA) --votes $(VOTES) --out samples/scenes

calibrate: $(VENV)/.dev         ## measure the detector-box-to-FER-crop margin (models/crop.json)
	$(PY) -m tools.calibrate_crop --data $(DATA) --out models/crop.json

clean:                          ## remove .venv, runs/ and the test and lint caches
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache

-include deploy/deploy.mk
