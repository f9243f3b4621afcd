//! Verifications per second per core of each store signature this system checks, through the
//! platform crates' public API. Each iteration is one full check as done per request (keys are
//! parsed once, as the verifiers do at start-up). `scripts/bench-signatures.sh` compares the
//! results with `openssl speed`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use iap_bench::{
    GOOGLE_ORIGINAL_JSON, HUAWEI_PURCHASE_DATA, Scheme, conformance_file, sign_with_new_key,
};
use iap_platform_apple::jws::{self, ChainTrust};
use iap_platform_apple::model::TransactionPayload;
use iap_platform_google::signature::LicenseKey;
use iap_platform_huawei::signature::{IapPublicKey, PKCS1, PSS};

/// A check time inside the validity of Apple's test chain (the vector has a signedDate anyway).
const NOW_MS: i64 = 1_700_000_000_000;

fn verifications(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");

    // (1) StoreKit 2 signed transaction: ES256 over the JWS, x5c leaf → intermediate → the
    // configured root (two certificate signatures), Apple's OIDs, validity, payload decode.
    let transaction = String::from_utf8(conformance_file("apple/official-test/transactionInfo"))
        .expect("UTF-8 JWS")
        .trim()
        .to_owned();
    let trust = ChainTrust::empty().with_root(conformance_file("apple/official-test/testCA.der"));
    jws::verify::<TransactionPayload>(&transaction, &trust, NOW_MS)
        .expect("the official test vector verifies");
    group.bench_function("apple_jws_es256_x5c", |b| {
        b.iter(|| {
            jws::verify::<TransactionPayload>(black_box(&transaction), &trust, NOW_MS).is_ok()
        });
    });

    // (2) Google Play purchase JSON under the licence key: SHA1withRSA, RSA-2048.
    let google = sign_with_new_key(GOOGLE_ORIGINAL_JSON, Scheme::Sha1Pkcs1);
    let licence = LicenseKey::from_base64(&google.public_key_base64).expect("licence key");
    assert!(licence.verifies(&google.data, &google.signature_base64));
    group.bench_function("google_sha1withrsa", |b| {
        b.iter(|| licence.verifies(black_box(&google.data), &google.signature_base64));
    });

    // (3), (4) Huawei InAppPurchaseData: SHA256WithRSA, PKCS#1 v1.5 and PSS, RSA-2048.
    for (name, scheme, algorithm) in [
        ("huawei_sha256withrsa_pkcs1", Scheme::Sha256Pkcs1, PKCS1),
        ("huawei_sha256withrsa_pss", Scheme::Sha256Pss, PSS),
    ] {
        let huawei = sign_with_new_key(HUAWEI_PURCHASE_DATA, scheme);
        let key = IapPublicKey::from_base64(&huawei.public_key_base64).expect("IAP key");
        assert!(key.verifies(&huawei.data, &huawei.signature_base64, Some(algorithm)));
        group.bench_function(name, |b| {
            b.iter(|| {
                key.verifies(
                    black_box(&huawei.data),
                    &huawei.signature_base64,
                    Some(algorithm),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, verifications);
criterion_main!(benches);
