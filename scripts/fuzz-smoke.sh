#!/usr/bin/env bash
# Runs every fuzz target for a few seconds each (default 15): a smoke test that the parsers and
# the pipeline survive arbitrary input. cargo-fuzz needs nightly-only compiler flags; on a
# stable toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --quiet --locked cargo-fuzz
fi

secs="${1:-15}"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build --release

for t in $targets; do
    echo "fuzz: $t for ${secs}s" >&2
    mkdir -p "corpus/$t"
    # Committed seeds (fuzz/seeds/TARGET) give the short run a start deep in the pipeline;
    # libFuzzer reads every directory and writes new inputs to the first.
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    cargo fuzz run --release "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -print_final_stats=0 >/dev/null 2>"/tmp/weft-fuzz-$t.log" || {
        echo "fuzz target $t failed:" >&2
        tail -50 "/tmp/weft-fuzz-$t.log" >&2
        exit 1
    }
done
echo "fuzz: all targets ran clean" >&2
