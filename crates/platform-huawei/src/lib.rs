//! Huawei IAP: InAppPurchaseData signatures, Order and Subscription services.
