//! PII guard: find personal and secret data in text, and redact it before
//! the text leaves the device. Pure functions: no I/O, not async.
//!
//! ```
//! use outpost_guard::{redact, Action, Restorer, Scanner, Vault};
//! let scanner = Scanner::new();
//! let mut vault = Vault::new();
//! let safe = redact(&scanner, "Mail jane.doe@example.com now", &Action::Placeholder, &mut vault).unwrap();
//! assert_eq!(safe.as_inner(), "Mail <EMAIL_ADDRESS_1> now");
//! let mut r = Restorer::new(&vault);
//! let mut answer = r.push(b"Sent to <EMAIL_");
//! answer += &r.push(b"ADDRESS_1>.");
//! answer += &r.finish();
//! assert_eq!(answer, "Sent to jane.doe@example.com.");
//! ```

pub mod corpus;
mod corpus_ids;
mod detect;
mod entity;
mod ids;
mod normalize;
mod patterns;
mod phone;
mod phone_rules;
mod redact;
mod rng;
mod validate;

pub use detect::{Finding, Scanner};
pub use entity::Entity;
pub use phone::{locale_region, Region};
pub use redact::{
    apply, redact, redact_texts, Action, GuardError, Redacted, Restorer, Texts, Vault,
};
