//! Identifiers and stored enum values: `AppId`, `UserId`, `ProductId` accept exactly what their
//! rules allow and round-trip (text, Display, serde); `OrderId` accepts any UUID spelling and its
//! stored form parses back to the same id; every stored enum parses only its own text.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;

use iap_domain::{
    AppId, BindingReason, Environment, OrderId, OrderState, Platform, ProductId, ProductKind,
    RejectReason, UserId,
};

macro_rules! check_text_id {
    ($ty:ident, $s:expr) => {{
        let s: &str = $s;
        let allowed = !s.is_empty()
            && s.len() <= $ty::MAX_LEN
            && s.trim() == s
            && !s.chars().any(char::is_control);
        let json = serde_json::to_string(s).unwrap();
        match $ty::parse(s) {
            Ok(id) => {
                assert!(allowed, "{} accepted {s:?}", stringify!($ty));
                assert_eq!(id.as_str(), s);
                assert_eq!(id.to_string(), s);
                assert_eq!(serde_json::from_str::<$ty>(&json).unwrap(), id);
                assert_eq!(serde_json::to_string(&id).unwrap(), json);
                assert_eq!(String::from(id), s);
            }
            Err(_) => {
                assert!(!allowed, "{} refused {s:?}", stringify!($ty));
                assert!(serde_json::from_str::<$ty>(&json).is_err());
            }
        }
    }};
}

fn check_enum<T>(s: &str, all: &[T])
where
    T: FromStr + Copy + PartialEq + std::fmt::Debug + std::fmt::Display,
{
    match T::from_str(s) {
        Ok(v) => assert_eq!(v.to_string(), s),
        Err(_) => assert!(all.iter().all(|v| v.to_string() != s)),
    }
}

fuzz_target!(
    init: {
        // `scripts/fuzz.sh seeds`: write the seed corpora and stop.
        if let Some(dir) = std::env::var_os("IAP_FUZZ_WRITE_SEEDS") {
            iap_fuzz::seeds::write_all(std::path::Path::new(&dir));
            eprintln!("seed corpora written under {}", dir.to_string_lossy());
            std::process::exit(0);
        }
    },
    |data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_text_id!(AppId, s);
    check_text_id!(UserId, s);
    check_text_id!(ProductId, s);

    match OrderId::parse(s) {
        Ok(id) => {
            let text = id.to_string();
            assert_eq!(text.len(), 36);
            assert_eq!(text, text.to_ascii_lowercase());
            assert_eq!(OrderId::parse(&text).unwrap(), id);
            assert_eq!(uuid::Uuid::parse_str(s.trim()).unwrap(), id.as_uuid());
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        }
        Err(e) => {
            assert!(uuid::Uuid::parse_str(s.trim()).is_err());
            assert_eq!(e.field, "order_id");
        }
    }

    check_enum(s, Platform::ALL);
    check_enum(s, OrderState::ALL);
    check_enum(s, ProductKind::ALL);
    check_enum(s, Environment::ALL);
    check_enum(s, BindingReason::ALL);
    check_enum(s, RejectReason::ALL);
});
