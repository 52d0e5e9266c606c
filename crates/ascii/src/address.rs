//! The address syntax: `CAPTURE` or `CAPTURE:TYPE`, the name of a named capture group of
//! the source's pattern(s) and, optionally, the type its text is read as (`string`,
//! `float`, `int`, `uint`, `bool`, `timestamp`). Without a type, the capture is read as the
//! type of the attribute it is bound to.

use backplane_config::AddressError;
use backplane_model::ScalarType;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub capture: String,
    pub ty: Option<ScalarType>,
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let (capture, ty) = match text.split_once(':') {
            Some((capture, ty)) => {
                let parsed = ScalarType::ALL.into_iter().find(|t| t.name() == ty);
                match parsed {
                    Some(t) => (capture, Some(t)),
                    None => {
                        return Err(AddressError {
                            message: format!("unknown type `{ty}` in `{text}`"),
                            hint: Some("one of: string, float, int, uint, bool, timestamp".into()),
                        });
                    }
                }
            }
            None => (text, None),
        };
        let valid = !capture.is_empty()
            && capture.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !capture.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(AddressError {
                message: format!("`{capture}` is not a capture group name"),
                hint: Some(
                    "the name of a named group `(?P<name>...)` of the source's pattern: letters, digits and `_`"
                        .into(),
                ),
            });
        }
        Ok(Address {
            capture: capture.to_owned(),
            ty,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_name_a_capture_and_optionally_its_type() {
        assert_eq!(
            Address::parse("weight").unwrap(),
            Address {
                capture: "weight".into(),
                ty: None
            }
        );
        assert_eq!(
            Address::parse("code:string").unwrap().ty,
            Some(ScalarType::String)
        );
        assert!(
            Address::parse("w:double")
                .unwrap_err()
                .message
                .contains("unknown type")
        );
        assert!(Address::parse("1w").is_err());
        assert!(Address::parse("").is_err());
        assert!(Address::parse("a-b").is_err());
    }
}
