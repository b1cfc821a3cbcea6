#!/usr/bin/env bash
# The README's run command: installs what is missing, builds in release mode, and starts a
# single-node ferrokv on 127.0.0.1:6379 with its data in ./ferrokv-data. Extra arguments go to
# ferrokv (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
exec cargo run --release --quiet -- "$@"
