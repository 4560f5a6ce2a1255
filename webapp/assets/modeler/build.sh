#!/bin/sh
# Builds webapp/static/vendor/modeler/ : modeler.bundle.js (bpmn-js Modeler + Camunda 7 properties panel, bundled
# by esbuild from index.js) and the CSS files those packages ship.
#
# The built files are committed, so a fresh machine runs the web app without Node. Run this script after changing
# index.js or a version in package.json: `sh webapp/assets/modeler/build.sh`. npm works in a temporary directory,
# so no node_modules is left in the source tree; the lock file is reused (npm ci) when it matches package.json and
# rewritten (npm install) when it does not — commit package.json, package-lock.json and the vendor files together.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$HERE/../../static" && pwd)/vendor/modeler
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cp "$HERE/package.json" "$HERE/index.js" "$HERE/translations-ru.js" "$WORK/"
cd "$WORK"
if [ -f "$HERE/package-lock.json" ] && [ "$(node -e "
    const lock = require('$HERE/package-lock.json').packages[''];
    const pkg = require('$HERE/package.json');
    const same = (a, b) => JSON.stringify(a || {}) === JSON.stringify(b || {});
    console.log(same(lock.dependencies, pkg.dependencies) && same(lock.devDependencies, pkg.devDependencies))")" = true ]; then
  cp "$HERE/package-lock.json" "$WORK/"
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
  cp "$WORK/package-lock.json" "$HERE/package-lock.json"
fi

mkdir -p "$OUT"
npx --no-install esbuild index.js --bundle --minify --format=iife --target=es2019 \
  --define:process.env.NODE_ENV='"production"' --legal-comments=eof \
  --outfile="$OUT/modeler.bundle.js"

NM="$WORK/node_modules"
cp "$NM/bpmn-js/dist/assets/diagram-js.css" "$NM/bpmn-js/dist/assets/bpmn-js.css" \
   "$NM/bpmn-js/dist/assets/bpmn-font/css/bpmn-embedded.css" \
   "$NM/@bpmn-io/properties-panel/dist/assets/properties-panel.css" "$OUT/"
{
  for pkg in bpmn-js bpmn-js-properties-panel @bpmn-io/properties-panel camunda-bpmn-moddle camunda-bpmn-js-behaviors \
             diagram-js; do
    echo "$pkg $(node -p "require('$NM/$pkg/package.json').version")"
  done
  echo "(built by webapp/assets/modeler/build.sh with esbuild $(npx --no-install esbuild --version))"
} > "$OUT/VERSION.txt"
cp "$NM/bpmn-js/LICENSE" "$OUT/bpmn-js.LICENSE.txt"
cp "$NM/bpmn-js-properties-panel/LICENSE" "$OUT/bpmn-js-properties-panel.LICENSE.txt"
echo "webapp/static/vendor/modeler:"
ls -l "$OUT"
