# One place for the commands the README and CI use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install compile test lint typecheck rules unit unit-python demo schemas \
	search-engines kafka-apache-jars test-kafka-apache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip first, pinned too: older pips mis-resolve a locked package that another requires
# with extras (githubkit's hishel[async,httpx]).
install: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-pip.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	mkdir -p build && touch $(COMPILED)

# The hot path compiled in place by mypyc (see setup.py), again whenever a module changed.
COMPILED := build/.compiled
compile: $(COMPILED)
$(COMPILED): setup.py $(shell find detector -name '*.py')
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $@

lint:
	$(BIN)/ruff check detector tests bench setup.py
	$(BIN)/ruff format --check detector tests bench setup.py

typecheck:
	$(BIN)/mypy detector

# The shipped rule pack: every rule loads, and every rule passes its own tests.
rules: compile
	$(BIN)/detector rules lint rules
	$(BIN)/detector rules test rules

# Every test; the Kafka-marked ones on Tansu. The SIEM tests start the search engines
# fetched below, so they are fetched first.
unit: search-engines compile
	$(BIN)/pytest

# The tests of the rule engine, the normalizers and the correlator again on the Python
# source (DETECTOR_PYTHON=1): it stays the reference the compiled build must agree with.
unit-python:
	DETECTOR_PYTHON=1 $(BIN)/pytest -m "not kafka and not siem" tests/rules tests/normalize \
	  tests/correlate

# What CI runs: lint, types, the rule pack, every test (the engine's also uncompiled), then
# the Kafka tests on Apache Kafka.
test: lint typecheck rules unit unit-python test-kafka-apache

# The main job: replay a shipped incident scenario through the shipped rule pack.
demo:
	$(BIN)/detector replay replay/01-stolen-github-token/logs

schemas:
	$(BIN)/detector schema export

# Elasticsearch and OpenSearch for the SIEM tests: their integration-test distributions
# from Maven Central, fetched once into the cache (the fixtures unpack and start them).
SEARCH_CACHE ?= $(HOME)/.cache/detector-test
ELASTICSEARCH_VERSION ?= 8.19.8
OPENSEARCH_VERSION ?= 2.19.4
search-engines: $(SEARCH_CACHE)/elasticsearch-$(ELASTICSEARCH_VERSION).zip $(SEARCH_CACHE)/opensearch-$(OPENSEARCH_VERSION).zip

$(SEARCH_CACHE)/elasticsearch-%.zip:
	mvn -q -B dependency:copy -DoutputDirectory=$(SEARCH_CACHE) \
	  -Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$*:zip

$(SEARCH_CACHE)/opensearch-%.zip:
	mvn -q -B dependency:copy -DoutputDirectory=$(SEARCH_CACHE) \
	  -Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:$*:zip

# Apache Kafka for the kafka-marked tests (they run on Tansu by default): its jars from
# Maven Central into the user's cache, once.
KAFKA_VERSION := 4.1.0
KAFKA_JARS := $(HOME)/.cache/detector-test/kafka-$(KAFKA_VERSION)

kafka-apache-jars: $(KAFKA_JARS)/kafka_2.13-$(KAFKA_VERSION).jar

$(KAFKA_JARS)/kafka_2.13-$(KAFKA_VERSION).jar: tests/kafka/apache-kafka/pom.xml
	mvn -q -f tests/kafka/apache-kafka/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(KAFKA_JARS)

# The Kafka runtime's tests again, on Apache Kafka (KRaft, one node).
test-kafka-apache: kafka-apache-jars
	DETECTOR_TEST_KAFKA=apache $(BIN)/pytest -m kafka
