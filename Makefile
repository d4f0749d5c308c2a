# One place for the commands the README and CI use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint typecheck rules unit demo schemas kafka-apache-jars test-kafka-apache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .

lint:
	$(BIN)/ruff check detector tests bench
	$(BIN)/ruff format --check detector tests bench

typecheck:
	$(BIN)/mypy detector

# The shipped rule pack: every rule loads, and every rule passes its own tests.
rules:
	$(BIN)/detector rules lint rules
	$(BIN)/detector rules test rules

unit:
	$(BIN)/pytest

# What CI runs: lint, types, the rule pack, then every test.
test: lint typecheck rules unit

# The main job: replay a shipped incident scenario through the shipped rule pack.
demo:
	$(BIN)/detector replay replay/01-stolen-github-token/logs

schemas:
	$(BIN)/detector schema export

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
