# Two commands matter: `make demo` and `make test`. Both create .venv when missing and install.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.handsynth-installed
BROWSER := $(VENV)/.handsynth-browser
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test lint format clean-venv

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

# Chromium + chromedriver: only the study page's browser test needs them (not `make demo`).
$(BROWSER): scripts/setup.sh | $(STAMP)
	bash scripts/setup.sh --browser-only
	touch $(BROWSER)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/handsynth demo --out outputs/demo

test: $(STAMP) $(BROWSER)
	$(PY) -m pytest -n 2 -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean-venv:
	rm -rf $(VENV)
