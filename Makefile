# One entry point for people and CI. `make check` installs what the tests need, then runs every
# gate, in an environment of its own: it may run while a server started from .venv (the README's
# first command, or `make run`) is serving, and never reinstalls what that server runs on.
VENV ?= .venv
CHECK_VENV ?= .venv-check

.PHONY: install run test lint check bench clean

# An environment with Kairos (editable) and the test tools: $(call environment,DIR)
define environment
$(1)/.installed: pyproject.toml
	python3 -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q -e '.[test]'
	touch $(1)/.installed
endef
$(eval $(call environment,$(VENV)))
ifneq ($(CHECK_VENV),$(VENV))
$(eval $(call environment,$(CHECK_VENV)))
endif

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/kairos serve

test: $(CHECK_VENV)/.installed
	$(CHECK_VENV)/bin/python -m pytest

lint: $(CHECK_VENV)/.installed
	$(CHECK_VENV)/bin/ruff check src tests bench docs examples
	$(CHECK_VENV)/bin/ruff format --check src tests bench docs examples
	$(CHECK_VENV)/bin/mypy

check: lint test

bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf $(VENV) $(CHECK_VENV) .pytest_cache .mypy_cache .ruff_cache
