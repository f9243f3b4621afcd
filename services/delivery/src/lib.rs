//! iap-delivery: DeliveryService, exactly-once grants to the game server and store confirmation.
