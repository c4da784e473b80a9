#!/usr/bin/env bash
# Refreshes the GraphiQL page's assets from the npm registry, gzip-compressed.
# They are built into the gateway binary (include_bytes!), so the page works
# behind a firewall; the versions are pinned here and in the page's HTML.
# Usage: gateway/assets/graphiql/fetch.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent graphiql@3.8.3 react@18.3.1 react-dom@18.3.1 >/dev/null
for tgz in *.tgz; do mkdir "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}" --strip-components=1; done
gz() { gzip -9 -n -c "$1" >"$here/$2.gz"; }
gz graphiql-3.8.3/graphiql.min.js graphiql.min.js
gz graphiql-3.8.3/graphiql.min.css graphiql.min.css
gz react-18.3.1/umd/react.production.min.js react.production.min.js
gz react-dom-18.3.1/umd/react-dom.production.min.js react-dom.production.min.js
{
  echo "graphiql 3.8.3, react 18.3.1, react-dom 18.3.1 — MIT licensed:"
  for pkg in graphiql-3.8.3 react-18.3.1 react-dom-18.3.1; do
    echo; echo "=== $pkg ==="; cat "$pkg/LICENSE"
  done
} >"$here/LICENSES.txt"
(cd "$here" && sha256sum ./*.gz >SHA256SUMS)
