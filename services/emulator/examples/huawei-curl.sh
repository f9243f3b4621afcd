#!/usr/bin/env bash
# The Huawei IAP paths of iap-emulator with nothing but curl: credentials, a purchase, the
# app-level token, Order verify / confirm, Subscription get. Exits non-zero on any surprise.
#
#   examples/huawei-curl.sh http://127.0.0.1:9090
set -euo pipefail
BASE=${1:-http://127.0.0.1:9090}
APP=102932647
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
expect() { [ "$1" = "$2" ] || { echo "expected $2, got $1 ($3)" >&2; exit 1; }; }

creds=$(curl -sf "$BASE/emulator/huawei/apps/$APP/credentials")
secret=$(echo "$creds" | json "['client_secret']")

# A consumable bought on the device: what the client SDK returns to the app.
purchase=$(curl -sf -X POST "$BASE/emulator/huawei/purchases" -H 'content-type: application/json' \
  -d "{\"app_id\":\"$APP\",\"product_id\":\"gems_100\",\"kind\":0,\"developer_payload\":\"order-1\"}")
token=$(echo "$purchase" | json "['purchase_token']")

# App-level access token (client credentials), then Basic base64("APPAT:" + token).
at=$(curl -sf -X POST "$BASE/huawei/oauth2/v3/token" \
  -d "grant_type=client_credentials&client_id=$APP&client_secret=$secret" | json "['access_token']")
auth="Authorization: Basic $(printf 'APPAT:%s' "$at" | base64 -w0)"
body="{\"purchaseToken\":\"$token\",\"productId\":\"gems_100\"}"

verify=$(curl -sf -X POST "$BASE/huawei/orders/applications/purchases/tokens/verify" -H "$auth" \
  -H 'content-type: application/json; charset=UTF-8' -H 'HW-IAP-APPINFO: {"signatureAlgorithm":"SHA256WithRSA/PSS"}' -d "$body")
expect "$(echo "$verify" | json "['responseCode']")" 0 verify
expect "$(echo "$verify" | json "['signatureAlgorithm']")" "SHA256WithRSA/PSS" "verify algorithm"
expect "$(echo "$verify" | python3 -c "import json,sys; print(json.loads(json.load(sys.stdin)['purchaseTokenData'])['developerPayload'])")" order-1 payload

confirm() { curl -sf -X POST "$BASE/huawei/orders/applications/v2/purchases/confirm" -H "$auth" -H 'content-type: application/json' -d "$body" | json "['responseCode']"; }
expect "$(confirm)" 0 "first confirm"
expect "$(confirm)" 9 "second confirm: already consumed"

sub=$(curl -sf -X POST "$BASE/emulator/huawei/purchases" -H 'content-type: application/json' \
  -d "{\"app_id\":\"$APP\",\"product_id\":\"premium_monthly\",\"kind\":2}")
sub_body="{\"subscriptionId\":\"$(echo "$sub" | json "['subscription_id']")\",\"purchaseToken\":\"$(echo "$sub" | json "['purchase_token']")\"}"
got=$(curl -sf -X POST "$BASE/huawei/subscr/sub/applications/v2/purchases/get" -H "$auth" -H 'content-type: application/json' -d "$sub_body")
expect "$(echo "$got" | python3 -c "import json,sys; print(json.loads(json.load(sys.stdin)['inappPurchaseData'])['subIsvalid'])")" True subIsvalid

unauthorized=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/huawei/orders/applications/purchases/tokens/verify" -H 'content-type: application/json' -d "$body")
expect "$unauthorized" 401 "no credentials"
echo "huawei-curl: all checks passed"
