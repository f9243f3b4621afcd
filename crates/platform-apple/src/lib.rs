//! App Store: StoreKit 2 JWS verification, legacy verifyReceipt and the App Store Server API.
