# robolearn — two commands for a newcomer:
#   make run    set everything up, then learn "reach" with CQN on the simulated Panda
#               (20 scripted demos first, if not stored yet); run again, it continues the
#               last run (its checkpoint and episodes); FRESH=1 starts a new one;
#               CONFIG=... for another config
#   make test   set everything up, then run the linter and the whole test suite (with a
#               throwaway PostgreSQL server for the PostgreSQL store tests, installed as root)
#
# Set-up is idempotent and stamped: it reruns only when requirements.lock or pyproject.toml
# change. As root it also installs the Debian packages MuJoCo needs to render headless.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.robolearn-setup
CONFIG ?= configs/sim_reach_cqn.yaml
# g++ and ninja-build compile the learner's CPU kernels (robolearn/learn/cqn/csrc).
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libglx-mesa0 g++ ninja-build
# Only the browser tests need Chromium (driven by playwright-core; nothing is downloaded).
TEST_DEB_PACKAGES := chromium
UI_STAMP := frontend/node_modules/.robolearn-setup
UI_SOURCES := $(shell find frontend/src frontend/index.html frontend/vite.config.ts frontend/svelte.config.js -type f 2>/dev/null)

# This machine kind keeps the torch CPU wheel on local disk; pip finds it there.
export PIP_FIND_LINKS ?= $(wildcard /opt/wheels)
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup run test lint bench clean-data system-packages test-packages franka-sim kernels lerobot

setup: $(STAMP) server/ui/index.html

# $(call apt_install,PACKAGES): install the missing ones as root, or say what is needed.
define apt_install
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	else echo "not root: make sure these Debian packages are installed: $(1)"; fi
endef

system-packages:
	$(call apt_install,$(DEB_PACKAGES))

test-packages:
	$(call apt_install,$(TEST_DEB_PACKAGES))

$(UI_STAMP): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $(UI_STAMP)

server/ui/index.html: $(UI_STAMP) $(UI_SOURCES)
	cd frontend && npm run build --silent

$(STAMP): requirements.lock pyproject.toml
	$(MAKE) system-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	$(MAKE) kernels
	touch $(STAMP)

# Compile the learner's CPU kernels now rather than on the first update (about 30 s, cached
# in ~/.cache/torch_extensions); without a compiler the learner falls back to ATen ops.
kernels:
	$(PY) -c "import logging; logging.basicConfig(level=logging.INFO, format='%(message)s'); \
	  from robolearn.learn.cqn.kernels import extension; extension()"

# The Franka driver's protocol-peer tests: the franka-sim server in its own venv (it pins
# numpy 1.26 and mujoco < 3.3) with the FR3 model it loads, and pylibfranka in robolearn's.
FRANKA_SIM_VENV  := .venvs/franka-sim
FRANKA_SIM_STAMP := $(FRANKA_SIM_VENV)/.robolearn-setup
FRANKA_CLIENT_STAMP := $(VENV)/.franka-client-setup

franka-sim: $(FRANKA_SIM_STAMP) $(FRANKA_CLIENT_STAMP)

$(FRANKA_SIM_STAMP): hardware/franka/sim-server.lock hardware/franka/sim_model.py
	test -x $(FRANKA_SIM_VENV)/bin/python || $(PYTHON) -m venv $(FRANKA_SIM_VENV) \
	  || python3 -m venv $(FRANKA_SIM_VENV)
	$(FRANKA_SIM_VENV)/bin/pip install -q --upgrade pip
	$(FRANKA_SIM_VENV)/bin/pip install -q -r hardware/franka/sim-server.lock
	$(FRANKA_SIM_VENV)/bin/python hardware/franka/sim_model.py $(FRANKA_SIM_VENV)/fr3.xml
	touch $(FRANKA_SIM_STAMP)

$(FRANKA_CLIENT_STAMP): $(STAMP) hardware/franka/client.lock
	$(PIP) install -q -c requirements.lock -r hardware/franka/client.lock
	touch $(FRANKA_CLIENT_STAMP)

# The LeRobot interchange tests: the real lerobot package in its own venv (it pins a torch
# that robolearn's venv cannot hold; see the lock file's header). torchcodec, LeRobot's
# default video decoder, loads the FFmpeg libraries that Debian's ffmpeg brings.
LEROBOT_VENV  := .venvs/lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.robolearn-setup
LEROBOT_DEB_PACKAGES := ffmpeg

lerobot: $(LEROBOT_STAMP)

$(LEROBOT_STAMP): tools/lerobot/requirements.lock
	$(call apt_install,$(LEROBOT_DEB_PACKAGES))
	test -x $(LEROBOT_VENV)/bin/python || $(PYTHON) -m venv $(LEROBOT_VENV) \
	  || python3 -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/pip install -q --upgrade pip
	$(LEROBOT_VENV)/bin/pip install -q --no-deps -r tools/lerobot/requirements.lock
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(LEROBOT_VENV)/bin/python -c \
	  "import lerobot.datasets.dataset_tools, lerobot.policies.act.modeling_act, torchcodec.decoders"
	touch $(LEROBOT_STAMP)

run: setup
	$(VENV)/bin/robolearn demos collect --config $(CONFIG) -n 20 --if-missing
	$(VENV)/bin/robolearn up $(CONFIG) $(if $(FRESH),,--continue)

test: setup test-packages franka-sim lerobot
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	cd frontend && npm run check --silent && npm test --silent
	tools/with_postgres.sh $(VENV)/bin/pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

bench: setup
	$(PY) -m benchmarks.bench_protocol
	$(PY) -m benchmarks.bench_sim
	$(PY) -m benchmarks.bench_control_loop
	$(PY) -m benchmarks.bench_replay
	$(PY) -m benchmarks.bench_cqn_update
	$(PY) -m benchmarks.bench_learning --task reach --steps 5000

clean-data:
	rm -rf data/
