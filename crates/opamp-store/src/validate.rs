//! Input rules the store enforces itself, so that no backend stores what another would
//! refuse and no name breaks a URL path segment.

use crate::{Error, Result};

/// The longest name (config, group, token).
pub const MAX_NAME_LEN: usize = 128;
/// The longest label key.
pub const MAX_LABEL_KEY_LEN: usize = 256;
/// The longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;

/// A config, group or token name: 1 to 128 characters from `A-Z a-z 0-9 . _ -`, starting
/// with a letter or digit (safe in URL paths and shell arguments).
pub fn name(what: &'static str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            what,
            format!("must be 1 to {MAX_NAME_LEN} characters long"),
        ));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::invalid(
            what,
            format!(
                "{s:?} may use only letters, digits, '.', '_' and '-', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A label key: 1 to 256 characters, no whitespace or control characters, no `=`, `!`,
/// `,`, `(` or `)` (they would not survive selector syntax).
pub fn label_key(k: &str) -> Result<()> {
    if k.is_empty() || k.len() > MAX_LABEL_KEY_LEN {
        return Err(Error::invalid(
            "label key",
            format!("must be 1 to {MAX_LABEL_KEY_LEN} bytes long"),
        ));
    }
    if k.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | '!' | ',' | '(' | ')'))
    {
        return Err(Error::invalid(
            "label key",
            format!("{k:?} contains whitespace, a control character or one of = ! , ( )"),
        ));
    }
    Ok(())
}

/// A label value: up to 1024 bytes, no control characters.
pub fn label_value(k: &str, v: &str) -> Result<()> {
    if v.len() > MAX_LABEL_VALUE_LEN {
        return Err(Error::invalid(
            "label value",
            format!("value of {k:?} is longer than {MAX_LABEL_VALUE_LEN} bytes"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(
            "label value",
            format!("value of {k:?} contains a control character"),
        ));
    }
    Ok(())
}

/// Free text (descriptions, messages, selectors): no NUL (PostgreSQL refuses it in text)
/// and at most `max` bytes.
pub fn text(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::invalid(what, format!("longer than {max} bytes")));
    }
    if s.contains('\0') {
        return Err(Error::invalid(what, "contains a NUL character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "a", "otel-collector_v2.1", "9lives"] {
            name("config name", ok).unwrap();
        }
        for bad in ["", "-x", ".hidden", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(name("config name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels() {
        label_key("service.name").unwrap();
        label_key("app.kubernetes.io/name").unwrap();
        for bad in ["", "a b", "a=b", "x,y", "!x", "a\n"] {
            assert!(label_key(bad).is_err(), "{bad:?}");
        }
        label_value("k", "").unwrap();
        assert!(label_value("k", "a\tb").is_err());
        assert!(label_value("k", &"v".repeat(1025)).is_err());
    }
}
