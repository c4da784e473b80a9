#!/usr/bin/env bash
# Refreshes the OpenAPI docs page's assets (Swagger UI) from the npm
# registry, gzip-compressed. They are built into the gateway binary
# (include_bytes!), so the page works behind a firewall; the version is
# pinned here.
# Usage: gateway/assets/swagger-ui/fetch.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent swagger-ui-dist@5.35.0 >/dev/null
mkdir pkg && tar xzf swagger-ui-dist-5.35.0.tgz -C pkg --strip-components=1
gz() { gzip -9 -n -c "pkg/$1" >"$here/$1.gz"; }
gz swagger-ui-bundle.js
gz swagger-ui.css
{
  echo "swagger-ui-dist 5.35.0 — Apache License 2.0:"
  echo
  cat pkg/LICENSE
  [ -f pkg/NOTICE ] && { echo; cat pkg/NOTICE; }
} >"$here/LICENSES.txt"
(cd "$here" && sha256sum ./*.gz >SHA256SUMS)
