//! The one rule for every client string a store keeps (a sale's name, a
//! user id, a payment reference): no control characters. PostgreSQL
//! refuses NUL in text, and none of them (NUL, newlines, escapes, the C1
//! range) belongs in such a value, so every mode refuses them at the door,
//! before anything is taken or acknowledged.

use crate::FieldError;

/// `Err` naming `field` when `value` holds a control character.
pub fn refuse_control_characters(field: &'static str, value: &str) -> Result<(), FieldError> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(FieldError::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_the_rest_kept() {
        for bad in [
            "a\0b",
            "line\nbreak",
            "tab\t",
            "del\u{7f}",
            "c1\u{85}",
            "\u{1b}[31m",
        ] {
            let error = refuse_control_characters("name", bad).unwrap_err();
            assert_eq!(error.field, "name", "{bad:?}");
        }
        for good in ["plain", "with space", "ünïcødé 車票 🚄", "quote\"'<>&"] {
            assert_eq!(refuse_control_characters("name", good), Ok(()), "{good:?}");
        }
    }
}
