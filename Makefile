# The kit's two front-door commands (see README):
#   make demo   set up, then run the whole chain on the bundled speech
#   make test   set up, then run every test (unit tests + notebooks)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-unit test-notebooks clean
setup:
	bash run_scripts/setup.sh

demo: setup
	source ./env.sh && $(PY) -m lpcnet.demo

test: setup
	source ./env.sh && $(PY) -m pytest tests notebooks --nbmake --nbmake-timeout=900 -p no:cacheprovider

test-unit: setup
	source ./env.sh && $(PY) -m pytest tests

test-notebooks: setup
	source ./env.sh && $(PY) -m pytest --nbmake --nbmake-timeout=900 notebooks

clean:
	rm -rf build *.egg-info lpcnet/*.so
