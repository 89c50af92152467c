# Two entry points a new user needs: `make demo` and `make test`. Both create/reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# lava-nc 0.10 and lava-dl 0.6 declare Python <3.11 but run on 3.11 through
# statten_hw.simulator.lava._compat; their dependencies come from pyproject.toml.
LAVA := lava-nc==0.10.0 lava-dl==0.6.0

.PHONY: venv demo test bench lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python $(LAVA)
	touch $(STAMP)

demo: venv
	$(BIN)/statten-hw info
	$(BIN)/statten-hw eval --dataset digits
	$(BIN)/statten-hw export -o out/export
	$(BIN)/statten-hw map statten_hw/default_models/digits_seq_b2.pth --target loihi2 -B all -o out/map
	$(BIN)/statten-hw energy --model paper45nm -o out/energy
	$(BIN)/statten-hw simulate --target loihi2 -o out/simulate
	$(BIN)/statten-hw sweep --targets loihi2,layerwise --precision target --samples 40 --no-progress -o out/sweep

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/run_all.py

# After a passing `make test` on upgraded packages: record their versions for every later install.
lock: venv
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -viE '^(lava-nc|lava-dl)=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info
