#!/usr/bin/env bash
# Verifications per second per core of each store signature (crates/bench), next to what
# `openssl speed` gets from the same primitive on the same machine, as a markdown table.
#
#   scripts/bench-signatures.sh            # run both, print the table
#   SKIP_CARGO=1 scripts/bench-signatures.sh   # reuse the last criterion results
#
# Criterion results are read from $CARGO_TARGET_DIR (default: target)/criterion. openssl speed
# runs one process (one core) for 3 s per primitive. Needs openssl and python3. Run it on a
# quiet machine.
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
seconds="${OPENSSL_SECONDS:-3}"

if [[ -z "${SKIP_CARGO:-}" ]]; then
    cargo bench -p iap-bench --bench signatures >&2
fi

openssl_out="$(openssl speed -seconds "$seconds" rsa2048 ecdsap256 2>/dev/null)"

# "rsa 2048 bits 0.000600s 0.000020s 1666.0 50000.0": sign/s then verify/s are the last two.
rsa_verify="$(awk '/^rsa +2048 bits/ { print $NF; exit }' <<<"$openssl_out")"
# " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  15000.0": verify/s is last.
ecdsa_verify="$(awk '/ecdsa \(nistp256\)/ { print $NF; exit }' <<<"$openssl_out")"
if [[ -z "$rsa_verify" || -z "$ecdsa_verify" ]]; then
    echo "could not read openssl speed output:" >&2
    echo "$openssl_out" >&2
    exit 1
fi

median_ns() {
    local file="$target_dir/criterion/verify/$1/new/estimates.json"
    if [[ ! -f "$file" ]]; then
        echo "missing $file (run without SKIP_CARGO)" >&2
        exit 1
    fi
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$file"
}

row() {
    # name, criterion bench id, openssl primitive, openssl verify/s, divisor for the chain note
    local label="$1" bench="$2" primitive="$3" reference="$4"
    local ns
    ns="$(median_ns "$bench")"
    python3 - "$label" "$ns" "$primitive" "$reference" <<'PY'
import sys
label, ns, primitive, reference = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
ours = 1e9 / ns
if "ES256" in label:
    # The JWS check is three ECDSA verifications (leaf over the data, intermediate over the
    # leaf, root over the intermediate): compare with a third of openssl's rate too.
    print(f"| {label} | {ns / 1000:.1f} | {ours:,.0f} | {primitive} | {reference:,.0f} "
          f"| {ours / reference:.2f} (vs openssl/3 = {reference / 3:,.0f}: {ours / (reference / 3):.2f}) |")
else:
    print(f"| {label} | {ns / 1000:.1f} | {ours:,.0f} | {primitive} | {reference:,.0f} | {ours / reference:.2f} |")
PY
}

echo "| Signature | median µs/verify | ours verify/s | openssl primitive | openssl verify/s | ours / openssl |"
echo "|---|---:|---:|---|---:|---|"
row "Apple StoreKit 2 JWS ES256 + x5c chain" apple_jws_es256_x5c "ECDSA P-256" "$ecdsa_verify"
row "Google SHA1withRSA (RSA-2048)" google_sha1withrsa "RSA-2048" "$rsa_verify"
row "Huawei SHA256WithRSA PKCS#1 v1.5 (RSA-2048)" huawei_sha256withrsa_pkcs1 "RSA-2048" "$rsa_verify"
row "Huawei SHA256WithRSA/PSS (RSA-2048)" huawei_sha256withrsa_pss "RSA-2048" "$rsa_verify"
