# EarthSignature: `make demo` runs the main job, `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup os-packages triton reference-data web test lint proto proto-check demo clean-state qgis-check

setup: $(INSTALLED) os-packages triton reference-data web

# Reinstall only when the dependency list changes.
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[ml,dev]'
	touch $@

os-packages:
	bash scripts/os-packages.sh

# Real data the project did not write: the configilm wheel carries a small real BigEarthNet v2 LMDB (read, not installed).
REFERENCE_WHEEL := $(VENV)/reference/configilm-0.7.1-py3-none-any.whl
reference-data: $(REFERENCE_WHEEL)
$(REFERENCE_WHEEL): | $(INSTALLED)
	$(BIN)/pip download -q --no-deps configilm==0.7.1 -d $(VENV)/reference

# The map page's web map library (OpenLayers) and its offline basemap (world-atlas's country outlines), pinned
# by web/package-lock.json, copied into the package.
WEB_VENDOR := earthsignature/service/api/web/static/vendor
web: $(WEB_VENDOR)/ol.js $(WEB_VENDOR)/countries-50m.json
$(WEB_VENDOR)/ol.js $(WEB_VENDOR)/countries-50m.json &: web/package-lock.json | os-packages
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	mkdir -p $(WEB_VENDOR)
	cp web/node_modules/ol/dist/ol.js web/node_modules/ol/ol.css web/node_modules/world-atlas/countries-50m.json \
		$(WEB_VENDOR)/

# A real Triton server (from the nvidia-pytriton wheel, without pytriton) for the model-service tests.
triton: $(INSTALLED)
	$(BIN)/python -m earthsignature.embedded.triton install >/dev/null

# ruff, and the dependency rules of pyproject.toml's [tool.importlinter]
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

proto: $(INSTALLED)
	$(BIN)/python -m earthsignature.protogen

proto-check: $(INSTALLED)
	$(BIN)/python -m earthsignature.protogen --check

test: setup lint proto-check
	$(BIN)/pytest -q

demo: setup
	$(BIN)/earthsignature demo

# Debian's QGIS opens a pilot's map links (benchmarks/qgis_check.py); its packages are large: not in setup.
qgis-check: setup
	bash scripts/os-packages.sh --qgis
	cd benchmarks && ../$(BIN)/python qgis_check.py

clean-state:
	-$(BIN)/earthsignature db down
	rm -rf var
