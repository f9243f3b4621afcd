//! The `iap.v1` gRPC contract: messages, clients and servers generated from `proto/` at build
//! time. Depends on nothing internal; services convert between these types and the domain.

/// Generated code for package `iap.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("iap.v1");
}

/// Encoded `FileDescriptorSet` of every `iap.v1` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/iap_v1_descriptor.bin"));

/// Encoded `FileDescriptorSet` of the `google.rpc` error details the statuses carry, so
/// reflection clients can decode them.
pub const ERROR_DETAILS_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/google_rpc_descriptor.bin"));

/// Service names as reflection and health checks know them.
pub mod service_names {
    /// `iap.v1.OrderService`
    pub const ORDER: &str = "iap.v1.OrderService";
    /// `iap.v1.VerificationService`
    pub const VERIFICATION: &str = "iap.v1.VerificationService";
    /// `iap.v1.DeliveryService`
    pub const DELIVERY: &str = "iap.v1.DeliveryService";
    /// `iap.v1.AdminService`
    pub const ADMIN: &str = "iap.v1.AdminService";
    /// `iap.v1.GameServerService`
    pub const GAME_SERVER: &str = "iap.v1.GameServerService";
}

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn descriptor_set_decodes_and_lists_every_service() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(|s| format!("iap.v1.{}", s.name())))
            .collect();
        for name in [
            super::service_names::ORDER,
            super::service_names::VERIFICATION,
            super::service_names::DELIVERY,
            super::service_names::ADMIN,
            super::service_names::GAME_SERVER,
        ] {
            assert!(
                services.iter().any(|s| s == name),
                "{name} missing from {services:?}"
            );
        }
    }
}
