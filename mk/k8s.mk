# Kubernetes checks (issue 5): installs the offline tools into .tools/ (idempotent, under a
# second when present), then runs tests/deploy: helm lint/template, kubernetes-validate,
# rendered-object assertions, promtool on alerts and dashboards, and the k8s/ sync check.
# Included by the top-level Makefile (-include mk/*.mk).

.PHONY: check-k8s k8s-tools render-k8s

# kubernetes-validate is installed for the venv's Python, so the venv comes first.
k8s-tools: install
	bash tools/install-k8s-tools.sh

check-k8s: k8s-tools
	.venv/bin/python -m pytest tests/deploy -q

# Regenerate k8s/ (and the chart's copy of deploy/prometheus/rules.yaml) after changing the chart.
render-k8s: k8s-tools
	bash tools/render-k8s.sh

# "make test" (and so CI) installs the tools too, so tests/deploy runs instead of skipping.
test: k8s-tools
