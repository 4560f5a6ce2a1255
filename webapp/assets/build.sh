#!/bin/sh
# Builds webapp/static/vendor/ from the npm package bpmn-js: its prebuilt viewer bundle, CSS and licence.
#
# The copied files are committed, so a fresh machine runs the web app without Node. Run this script only to
# upgrade bpmn-js: change the version in package.json, then `sh webapp/assets/build.sh` (it rewrites
# package-lock.json; commit both and the new vendor files). npm works in a temporary directory, so no
# node_modules is left in the source tree.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
VENDOR=$(cd "$HERE/../static" && pwd)/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cp "$HERE/package.json" "$WORK/"
cd "$WORK"
if [ -f "$HERE/package-lock.json" ] && grep -q '"node_modules/bpmn-js"' "$HERE/package-lock.json" \
    && [ "$(node -p "require('$HERE/package-lock.json').packages[''].dependencies['bpmn-js']")" = \
         "$(node -p "require('$HERE/package.json').dependencies['bpmn-js']")" ]; then
  cp "$HERE/package-lock.json" "$WORK/"
  npm ci --no-audit --no-fund --ignore-scripts
else
  # first run, or package.json names another version: resolve again and keep the new lock file
  npm install --no-audit --no-fund --ignore-scripts
  cp "$WORK/package-lock.json" "$HERE/package-lock.json"
fi

DIST="$WORK/node_modules/bpmn-js/dist"
mkdir -p "$VENDOR"
cp "$DIST/bpmn-viewer.production.min.js" "$VENDOR/"
for css in assets/diagram-js.css assets/bpmn-js.css assets/bpmn-font/css/bpmn-embedded.css; do
  if [ -f "$DIST/$css" ]; then
    cp "$DIST/$css" "$VENDOR/"
  fi
done
cp "$WORK/node_modules/bpmn-js/LICENSE" "$VENDOR/bpmn-js.LICENSE.txt"
VERSION=$(node -p "require('./node_modules/bpmn-js/package.json').version")
echo "bpmn-js $VERSION (built by webapp/assets/build.sh from npm)" > "$VENDOR/VERSION.txt"
echo "webapp/static/vendor: bpmn-js $VERSION"
ls -l "$VENDOR"
