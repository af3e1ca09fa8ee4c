#!/bin/sh
# Builds the monitoring mixin into the files the repository ships: dashboards/*.json,
# deploy/prometheus/rules.yml and deploy/kubernetes/prometheusrule.yaml. Needs only `jsonnet`
# (Debian: apt-get install jsonnet). Usage: mixin/build.sh [OUTPUT_ROOT] (default: the repository).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(dirname "$here")}
jsonnet=${JSONNET:-jsonnet}
mkdir -p "$out/dashboards" "$out/deploy/prometheus" "$out/deploy/kubernetes"
"$jsonnet" -J "$here" -S -m "$out/dashboards" "$here/dashboards.jsonnet" >/dev/null
"$jsonnet" -J "$here" -S -o "$out/deploy/prometheus/rules.yml" "$here/rules.jsonnet"
"$jsonnet" -J "$here" -S -o "$out/deploy/kubernetes/prometheusrule.yaml" "$here/prometheusrule.jsonnet"
