# Load tests (issue 7): locust against a local stack (vdup up when it is installed, else one
# embedded vdup serve), reports under reports/loadtest-<timestamp>/ with a summary.md.
# Included by the top-level Makefile (-include mk/*.mk). One load test at a time: they measure
# the whole machine.
#
#   make loadtest                                   # dev mix, 2 users, 60 s
#   make loadtest LOADTEST_MIX=clip60 LOADTEST_USERS=2 LOADTEST_TIME=5m \
#        LOADTEST_ARGS="--max-concurrency 2 --deadline-s 30 --baseline reports/baseline.json"
#   make loadtest-baseline                          # in-process videos/min on the 60 s clip

LOADTEST_MIX   ?= dev
LOADTEST_USERS ?= 2
LOADTEST_TIME  ?= 60s
LOADTEST_ARGS  ?=
BASELINE_ARGS  ?= --duration-s 300 --threads 1

.PHONY: loadtest loadtest-baseline

loadtest: install
	$(BIN)/python loadtests/run.py --mix $(LOADTEST_MIX) --users $(LOADTEST_USERS) --time $(LOADTEST_TIME) \
		$(LOADTEST_ARGS)

loadtest-baseline: install
	mkdir -p reports
	$(BIN)/python loadtests/inprocess_throughput.py $(BASELINE_ARGS) --out reports/baseline.json
