# The developer loop. `make run` and `make test` work on a fresh clone (Python 3.11+ and a C compiler).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SERVICES := edge router executor accounting analytics admin
PROTOS := $(wildcard protos/omniroute/v1/*.proto)
STUBS  := libs/omniroute/v1/.stamp

.PHONY: venv protos run test test-deps lint typecheck bench clean chart-check

venv: $(VENV)/.stamp

$(VENV)/.stamp: requirements.txt requirements-dev.txt libs/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e libs $(foreach s,$(SERVICES),-e services/$(s))
	touch $@

protos: $(STUBS)

$(STUBS): $(VENV)/.stamp $(PROTOS)
	$(PY) -m grpc_tools.protoc -I protos --python_out=libs --pyi_out=libs --grpc_python_out=libs $(PROTOS)
	touch $@

run: protos
	$(PY) -m omniroute.devstack run

# What the tests need beyond pip (Chromium for the dashboard's browser test): installed when this
# user can (root with apt-get), else `make test` stops at once with the exact command that would.
test-deps: protos
	$(PY) -m omniroute.devstack test-deps

test: test-deps
	$(PY) -m omniroute.devstack test -- -n 2 --dist loadgroup -q $(PYTEST_ARGS)

lint: protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs services tests

bench: protos
	$(PY) -m pip install -q -r bench/requirements-bench.txt
	test -x bench/.litellm-venv/bin/litellm || ($(PYTHON) -m venv bench/.litellm-venv && \
	  bench/.litellm-venv/bin/pip install -q -r bench/requirements-litellm.txt)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .omniroute libs/omniroute/v1/*_pb2*.py libs/omniroute/v1/*_pb2*.pyi $(STUBS)

# Offline: render + validate + lint the chart with the default values and the production example
# (tests.deploy.chart.chart_check, also run by tests/deploy/test_chart.py::test_make_chart_check),
# then the chart's property tests.
chart-check: protos
	$(PY) -m tests.deploy.chart --check
	$(PY) -m pytest -q tests/deploy/test_chart.py
