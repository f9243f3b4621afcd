#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (targets in fuzz/fuzz_targets, see docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   run each target SECONDS (default 60), all by default
#   scripts/fuzz.sh build                   build the targets only
#   scripts/fuzz.sh seeds                   rewrite the committed seed corpora (fuzz/corpus/*/seed-*)
#   scripts/fuzz.sh list                    list the targets
#
# Works on stable Rust: `-s none` builds without a sanitizer, which is the only part of
# cargo-fuzz 0.13 that needs nightly (no -Z flag is passed then, so RUSTC_BOOTSTRAP is not
# needed; setting it would also invalidate every cached build). Builds use debug assertions and
# overflow checks (`-a`), so arithmetic overflow is a crash. New corpus entries land beside the seeds and are git-ignored; crash
# reproducers land in fuzz/artifacts/<target>/ (also git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

build_flags=(-s none -a)
# Per input: 10 s is a hang; 2 GiB of RSS is an oversized allocation.
fuzz_flags=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)

targets() { cargo fuzz list; }

case "${1:-}" in
build)
    cargo fuzz build "${build_flags[@]}"
    exit 0
    ;;
list)
    targets
    exit 0
    ;;
seeds)
    cargo fuzz build "${build_flags[@]}" ids
    IAP_FUZZ_WRITE_SEEDS="$PWD/corpus" cargo fuzz run "${build_flags[@]}" ids -- -runs=0
    exit 0
    ;;
esac

seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...] | build | seeds | list" >&2; exit 2; }
shift || true
if [[ $# -gt 0 ]]; then selected=("$@"); else mapfile -t selected < <(targets); fi

cargo fuzz build "${build_flags[@]}"
failed=()
for target in "${selected[@]}"; do
    echo "=== $target: ${seconds}s" >&2
    mkdir -p "corpus/$target"
    if ! cargo fuzz run "${build_flags[@]}" "$target" "corpus/$target" -- \
        "${fuzz_flags[@]}" -max_total_time="$seconds"; then
        failed+=("$target")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all ${#selected[@]} targets ran ${seconds}s without a finding" >&2
