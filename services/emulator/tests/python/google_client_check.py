"""Google's own client library against the emulator.

Uses google-api-python-client with its bundled (static) androidpublisher v3 discovery document and
google-auth's service-account flow, exactly as a studio's Python backend would, pointed at the
emulator with `client_options={"api_endpoint": <emulator>/google/}`.

    python3 google_client_check.py http://127.0.0.1:9090

Exit status 0 when every check passes.
"""

import json
import sys
import urllib.request

from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

PACKAGE = "com.example.game"
SCOPE = "https://www.googleapis.com/auth/androidpublisher"


BASE = ""


def control(path, body=None):
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(
        f"{BASE}/emulator{path}", data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def main(base):
    global BASE
    BASE = base
    with urllib.request.urlopen(f"{base}/emulator/google/service-account.json") as response:
        info = json.load(response)
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    service = build(
        "androidpublisher",
        "v3",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": f"{base}/google/"},
    )
    purchases = service.purchases()

    made = control("/google/purchases", {"package_name": PACKAGE, "product_id": "gems_100", "kind": "inapp"})
    token = made["purchase_token"]
    product = purchases.products().get(packageName=PACKAGE, productId="gems_100", token=token).execute()
    assert product["purchaseState"] == 0, product
    v2 = purchases.productsv2().getproductpurchasev2(packageName=PACKAGE, token=token).execute()
    assert v2["purchaseStateContext"]["purchaseState"] == "PURCHASED", v2
    purchases.products().consume(packageName=PACKAGE, productId="gems_100", token=token).execute()
    try:
        purchases.products().consume(packageName=PACKAGE, productId="gems_100", token=token).execute()
        raise AssertionError("second consume must fail")
    except HttpError as error:
        assert error.status_code == 400, error

    made = control("/google/purchases", {"package_name": PACKAGE, "product_id": "no_ads", "kind": "inapp"})
    purchases.products().acknowledge(
        packageName=PACKAGE, productId="no_ads", token=made["purchase_token"], body={"developerPayload": "x"}
    ).execute()
    acked = purchases.products().get(packageName=PACKAGE, productId="no_ads", token=made["purchase_token"]).execute()
    assert acked["acknowledgementState"] == 1, acked

    sub = control("/google/purchases", {"package_name": PACKAGE, "product_id": "premium_monthly", "kind": "subs"})
    state = purchases.subscriptionsv2().get(packageName=PACKAGE, token=sub["purchase_token"]).execute()
    assert state["subscriptionState"] == "SUBSCRIPTION_STATE_ACTIVE", state
    purchases.subscriptions().acknowledge(
        packageName=PACKAGE, subscriptionId="premium_monthly", token=sub["purchase_token"], body={}
    ).execute()

    control(f"/google/purchases/{sub['purchase_token']}/refund")
    voided = purchases.voidedpurchases().list(packageName=PACKAGE, type=1).execute()
    assert voided["voidedPurchases"][0]["purchaseToken"] == sub["purchase_token"], voided

    try:
        purchases.productsv2().getproductpurchasev2(packageName=PACKAGE, token="unknown").execute()
        raise AssertionError("unknown token must fail")
    except HttpError as error:
        assert error.status_code == 400, error
    print("google-api-python-client: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
