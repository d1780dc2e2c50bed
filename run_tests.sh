#!/usr/bin/env bash
# Installs what the tests need (the project with its test extra, Debian's chromium for the browser test) and runs them.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e ".[test]"
if [ ! -x /usr/bin/chromium ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
python -m pytest -q -p no:cacheprovider "$@"
