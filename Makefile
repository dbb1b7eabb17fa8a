# Every entry point of the repository. See README.md for the two that matter:
#   make demo   runs the example pipeline locally, no servers needed
#   make test   installs what it needs, starts real servers, runs every test
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
ASYA  := $(VENV)/bin/asya

.PHONY: install install-demo demo test test-cluster cluster-up cluster-down test-python lint bench bench-gateway charts charts-test images clean

install:            ## venv with every extra (tests, lint, bench)
	ci/bootstrap.sh test,dev,bench,operator,gateway

install-demo:       ## the smallest venv that runs the demo
	ci/bootstrap.sh cli

demo: install-demo  ## run examples/01-text-pipeline on the local transport
	$(ASYA) dev run examples/01-text-pipeline/pipeline.yaml --out .asya-demo

test: install       ## every test, with real servers started by ci/ scripts
	ci/test.sh

test-cluster: install ## only the one-node Kubernetes proofs (make test runs them too); docs/testing.md
	ci/test.sh tests/cluster

cluster-up:         ## a real one-node cluster to try charts on by hand (docs/testing.md)
	ci/cluster.sh up && ci/images.sh load

cluster-down:       ## stop it; no process, mount, netns, veth or cgroup stays
	ci/cluster.sh down

lint: install       ## ruff, mypy (strict), import-linter
	cd python && ../$(VENV)/bin/ruff check src tests && ../$(VENV)/bin/ruff format --check src tests
	cd python && ../$(VENV)/bin/mypy
	cd python && ../$(VENV)/bin/lint-imports

bench: install      ## benchmarks: table on stdout, JSON in bench/results/latest.json (gateway: gateway.json)
	ci/bench.sh

bench-gateway: install ## only the gateway bench: private PostgreSQL, a real gateway process; bench/results/gateway.json
	PYTHONPATH=. $(PY) -m bench.gateway_bench

charts:             ## copy crds/ into the operator chart (the chart ships the same bytes)
	ci/charts.sh sync

charts-test: install ## helm lint, helm-unittest, ct lint, kubeconform, README freshness, installs into a real apiserver
	ci/charts.sh test

images:             ## build every image with podman (base from mmdebstrap) and start each once
	ci/images.sh

clean:
	rm -rf $(VENV) .asya-demo .tools
