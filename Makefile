# Optional shortcuts; every target sets up .venv first (quickstart.py does nothing when it is current).
PYTHON ?= python3
VENV_BIN = .venv/bin

.PHONY: venv run test fast-test release references bench lab

venv:
	$(PYTHON) -c "import quickstart; quickstart.ensure_venv()"

run:            ## all notebooks headless, offline profile (the README's main job)
	$(PYTHON) quickstart.py run

test:           ## the full test suite (what .ci/run runs)
	$(PYTHON) quickstart.py test

fast-test:      ## unit tests only: no notebook runs, no browser
	$(PYTHON) quickstart.py test -m "not slow"

release: venv   ## write notebooks/ from solutions/
	$(VENV_BIN)/course release

references: venv  ## regenerate the nbval references (then review git diff tests/references)
	$(VENV_BIN)/course references

bench: venv     ## side-by-side speed benchmark
	$(VENV_BIN)/course bench

lab: venv       ## JupyterLab on the student notebooks
	$(VENV_BIN)/jupyter lab notebooks/
