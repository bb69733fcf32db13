# mmdet-slf: `make demo` runs the embedded CPU demo, `make test` the test suite.
# Both install what is missing first; a second run skips what is installed.
PYTHON ?= python
PIP := $(PYTHON) -m pip
PYTEST_ARGS ?=

.PHONY: install install-tests demo test lint benchmark clean-demo

# Each step checks the environment itself, so nothing is redone when present.
install:
	@$(PYTHON) -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null \
		|| $(PIP) install torch==2.13.0
	@$(PYTHON) -c "import wheel, ninja, setuptools as s; assert 77 <= int(s.__version__.split('.')[0]) < 81" 2>/dev/null \
		|| $(PIP) install -r requirements/build.txt
	@$(PYTHON) -c "import mmengine; assert mmengine.__version__ == '0.10.7'" 2>/dev/null \
		|| $(PIP) install mmengine==0.10.7
	@$(PYTHON) -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null \
		|| (echo "Building mmcv 2.1.0 with ops (about 7 minutes on 2 cores, cached afterwards)..." \
		    && $(PIP) install --no-build-isolation mmcv==2.1.0)
	@# Without the current directory on sys.path (as -P does, on Python
	@# >= 3.11 only), so that this finds the installed mmdet_slf (and checks
	@# it is this checkout), not the source tree.
	@$(PYTHON) -c "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; \
		import os, mmdet_slf, mmdet, sklearn, pycocotools, cv2, matplotlib; \
		assert mmdet.__version__ == '3.3.0'; \
		assert os.path.samefile(os.path.dirname(mmdet_slf.__file__), 'mmdet_slf')" 2>/dev/null \
		|| $(PIP) install --no-build-isolation -e .

install-tests: install
	@$(PYTHON) -c "import pytest, tensorboard" 2>/dev/null \
		|| $(PIP) install -r requirements/tests.txt

test: install-tests
	$(PYTHON) -m pytest tests $(PYTEST_ARGS)

lint:
	@$(PYTHON) -m flake8 --version >/dev/null 2>&1 || $(PIP) install flake8
	$(PYTHON) -m flake8 mmdet_slf tools tests configs setup.py

demo: install
	$(PYTHON) tools/run_demo.py

benchmark: install
	$(PYTHON) tools/benchmark.py

clean-demo:
	rm -rf data/digits_voc work_dirs/demo work_dirs/demo-fixed
