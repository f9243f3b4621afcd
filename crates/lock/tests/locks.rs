//! The same contract checked on the real Redis (private key prefix per test) and in-process.

use std::time::Duration;

use iap_lock::{LocalLock, LockError, RedisLock, WorkLock};
use iap_test_support::TestRedis;

async fn contract(lock: &dyn WorkLock) {
    let ttl = Duration::from_millis(300);
    let first = lock
        .acquire("order-1", ttl)
        .await
        .unwrap()
        .expect("free key is granted");
    assert!(
        lock.acquire("order-1", ttl).await.unwrap().is_none(),
        "held key is refused"
    );
    assert!(
        lock.acquire("order-2", ttl).await.unwrap().is_some(),
        "keys are independent"
    );

    // Someone else's token can neither renew nor release.
    let forged = iap_lock::Lease {
        key: first.key.clone(),
        token: "not-the-token".into(),
    };
    assert!(!lock.renew(&forged, ttl).await.unwrap());
    assert!(!lock.release(&forged).await.unwrap());

    // Renewal keeps it past the first expiry.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        lock.renew(&first, Duration::from_millis(400))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        lock.acquire("order-1", ttl).await.unwrap().is_none(),
        "renewed lease still held"
    );

    assert!(lock.release(&first).await.unwrap());
    assert!(
        !lock.release(&first).await.unwrap(),
        "second release is a no-op"
    );
    let second = lock
        .acquire("order-1", ttl)
        .await
        .unwrap()
        .expect("released key is free");
    assert_ne!(second.token, first.token);

    // An expired lease is lost: its holder cannot renew it after another worker took the key.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = lock
        .acquire("order-1", ttl)
        .await
        .unwrap()
        .expect("expired key is free");
    assert!(!lock.renew(&second, ttl).await.unwrap());
    assert!(lock.release(&third).await.unwrap());
}

#[tokio::test]
async fn redis_lock_honours_the_contract() {
    let redis = TestRedis::new();
    let lock = RedisLock::new(&redis.url, &redis.prefix).unwrap();
    lock.ping().await.expect("test Redis answers");
    contract(&lock).await;
}

#[tokio::test]
async fn local_lock_honours_the_contract() {
    contract(&LocalLock::new()).await;
}

#[tokio::test]
async fn unreachable_redis_fails_fast_as_unavailable() {
    let lock = RedisLock::new("redis://127.0.0.1:1/", "x:").unwrap();
    let started = std::time::Instant::now();
    let err = lock.acquire("k", Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, LockError::Unavailable(_)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn prefixes_isolate_deployments() {
    let redis = TestRedis::new();
    let a = RedisLock::new(&redis.url, &format!("{}a:", redis.prefix)).unwrap();
    let b = RedisLock::new(&redis.url, &format!("{}b:", redis.prefix)).unwrap();
    let ttl = Duration::from_secs(5);
    let lease = a.acquire("order-1", ttl).await.unwrap().unwrap();
    assert!(b.acquire("order-1", ttl).await.unwrap().is_some());
    assert!(a.release(&lease).await.unwrap());
}
