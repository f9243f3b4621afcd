//! iap-emulator: a local App Store, Google Play and Huawei IAP speaking the stores' wire formats.
