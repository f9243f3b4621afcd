"""Apple's own `app-store-server-library` against the emulator.

Its SignedDataVerifier, trusting the emulator's root (as a studio's backend would trust Apple
Root CA G3), verifies a signed transaction, renewal info and an App Store Server Notification
V2 offline, with the library's strict chain checks on; its API client calls the emulator's App
Store Server API with the emulator's key.

    python3 apple_library_check.py http://127.0.0.1:9090

Exit status 0 when every check passes.
"""

import json
import sys
import urllib.request

from appstoreserverlibrary.api_client import AppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, VerificationException

BUNDLE = "com.example.game"
APP_APPLE_ID = 1234567890


def call(base, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/emulator{path}", data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        raw = response.read()
        return raw if path.endswith(".der") else json.loads(raw)


def main(base):
    root = call(base, "/apple/root.der")
    verifier = SignedDataVerifier([root], False, Environment.SANDBOX, BUNDLE, APP_APPLE_ID)

    made = call(base, "/apple/purchases", {
        "bundle_id": BUNDLE, "product_id": "premium_monthly", "product_type": "Auto-Renewable Subscription",
        "app_account_token": "0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f", "app_apple_id": APP_APPLE_ID,
    })
    transaction = verifier.verify_and_decode_signed_transaction(made["signed_transaction"])
    assert transaction.transactionId == made["transaction_id"], transaction
    assert transaction.appAccountToken == "0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f", transaction
    notification = verifier.verify_and_decode_notification(made["notification"]["signedPayload"])
    assert notification.rawNotificationType == "SUBSCRIBED", notification
    renewal = verifier.verify_and_decode_renewal_info(notification.data.signedRenewalInfo)
    assert renewal.originalTransactionId == made["original_transaction_id"], renewal

    other_bundle = SignedDataVerifier([root], False, Environment.SANDBOX, "com.other.app", APP_APPLE_ID)
    try:
        other_bundle.verify_and_decode_signed_transaction(made["signed_transaction"])
        raise AssertionError("a transaction of another bundle must be refused")
    except VerificationException:
        pass

    key = call(base, "/apple/api-key")
    client = AppStoreServerAPIClient(
        key["private_key_pem"].encode(), key["key_id"], key["issuer_id"], BUNDLE, Environment.LOCAL_TESTING
    )
    client._base_url = f"{base}/apple/sandbox"
    info = client.get_transaction_info(made["transaction_id"])
    decoded = verifier.verify_and_decode_signed_transaction(info.signedTransactionInfo)
    assert decoded.productId == "premium_monthly", decoded
    print("app-store-server-library: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
