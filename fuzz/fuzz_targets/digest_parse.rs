//! Fuzz target: the parsers whose output becomes file names or deadlines
//! (`Digest`, its `sha256-<hex>` file-name form, `ModelName`, `Timestamp`)
//! never panic, accept only their one canonical spelling, and what they
//! accept can never leave its directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_protocol::{Digest, ModelName, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s, "only the canonical form parses");
        let name = d.file_name();
        assert!(!name.contains(['/', '\\', '.', ':', '\0']), "{name}");
        assert_eq!(Digest::from_file_name(&name), Ok(d));
    }
    if let Ok(d) = Digest::from_file_name(s) {
        assert_eq!(d.file_name(), s);
    }
    if let Ok(m) = ModelName::parse(s) {
        assert_eq!(m.as_str(), s);
        assert!(!s.contains(['/', '\\', '\0']) && !s.starts_with('.') && !s.contains(".."));
    }
    if let Ok(t) = Timestamp::parse(s) {
        assert_eq!(t.to_string(), s);
    }
});
