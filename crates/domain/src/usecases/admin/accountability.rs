//! Who acts and why: every manual change names an operator and a reason, and both go into the
//! audit entry written with the change.

use super::{AdminError, invalid};
use crate::admin::AuditEntry;
use crate::ids::OrderId;

const MAX_OPERATOR_LEN: usize = 128;
const MAX_REASON_LEN: usize = 2_000;

/// Who acts and why: required on every call that changes something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accountability {
    operator: String,
    reason: String,
}

impl Accountability {
    /// Checks both are present, single-line where it matters, and of sane length.
    pub fn parse(operator: &str, reason: &str) -> Result<Self, AdminError> {
        Ok(Self {
            operator: Self::parse_operator(operator)?,
            reason: Self::parse_reason(reason)?,
        })
    }

    pub(super) fn parse_operator(operator: &str) -> Result<String, AdminError> {
        let operator = operator.trim();
        if operator.is_empty() {
            return Err(invalid("operator", "is required (who is acting)"));
        }
        if operator.len() > MAX_OPERATOR_LEN || operator.chars().any(char::is_control) {
            return Err(invalid(
                "operator",
                format!("must be one line of at most {MAX_OPERATOR_LEN} bytes"),
            ));
        }
        Ok(operator.to_owned())
    }

    pub(super) fn parse_reason(reason: &str) -> Result<String, AdminError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason",
                "is required (why; a ticket number will do)",
            ));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(invalid(
                "reason",
                format!("must be at most {MAX_REASON_LEN} bytes"),
            ));
        }
        Ok(reason.to_owned())
    }

    /// Who acts.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn audit(
        &self,
        action: &'static str,
        order: Option<OrderId>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            operator: self.operator.clone(),
            action,
            order_id: order,
            reason: self.reason.clone(),
            detail,
            idempotency_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_and_reason_are_required() {
        assert!(Accountability::parse("alice", "ticket 42").is_ok());
        for (operator, reason, field) in [
            ("", "ticket", "operator"),
            ("  ", "ticket", "operator"),
            ("alice", "", "reason"),
            ("al\nice", "ticket", "operator"),
        ] {
            match Accountability::parse(operator, reason) {
                Err(AdminError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{operator:?}/{reason:?}: {other:?}"),
            }
        }
    }
}
