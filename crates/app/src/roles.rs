//! Which roles one process plays. The three binaries each play one; `iapd` plays all three; a
//! test or the load generator may pick any set.

/// The roles a process plays: the verifier (the front door: orders, verification, operators,
/// store notifications), delivery (grants and store confirmation) and the scheduler (gauges,
/// subscription checks, reconciliation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// `OrderService`, `VerificationService`, `AdminService`, `POST /notifications/{store}`.
    pub verifier: bool,
    /// `DeliveryService`, the order sweep, the entitlement sync and the notification inbox.
    pub delivery: bool,
    /// The gauges, subscription checks and reconciliation (and, without the delivery role in
    /// the process, the order sweep over gRPC).
    pub scheduler: bool,
}

impl Roles {
    /// `iap-verifier`.
    pub const VERIFIER: Roles = Roles {
        verifier: true,
        delivery: false,
        scheduler: false,
    };
    /// `iap-delivery`.
    pub const DELIVERY: Roles = Roles {
        verifier: false,
        delivery: true,
        scheduler: false,
    };
    /// `iap-scheduler`.
    pub const SCHEDULER: Roles = Roles {
        verifier: false,
        delivery: false,
        scheduler: true,
    };
    /// `iapd`: every role in one process.
    pub const ALL: Roles = Roles {
        verifier: true,
        delivery: true,
        scheduler: true,
    };

    /// The process name logs and warnings use: the binary that plays exactly these roles.
    pub fn process_name(self) -> &'static str {
        match self {
            Roles::VERIFIER => "iap-verifier",
            Roles::DELIVERY => "iap-delivery",
            Roles::SCHEDULER => "iap-scheduler",
            _ => "iapd",
        }
    }
}

impl std::ops::BitOr for Roles {
    type Output = Roles;

    fn bitor(self, other: Roles) -> Roles {
        Roles {
            verifier: self.verifier || other.verifier,
            delivery: self.delivery || other.delivery,
            scheduler: self.scheduler || other.scheduler,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_roles_together_are_iapd() {
        assert_eq!(
            Roles::VERIFIER | Roles::DELIVERY | Roles::SCHEDULER,
            Roles::ALL
        );
        assert_eq!(Roles::ALL.process_name(), "iapd");
        assert_eq!((Roles::VERIFIER | Roles::DELIVERY).process_name(), "iapd");
        assert_eq!(Roles::DELIVERY.process_name(), "iap-delivery");
    }
}
