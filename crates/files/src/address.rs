//! The address a binding reads from a file: `FIELD[:TYPE][[KEY=VALUE]]`.
//!
//! - `FIELD`: a CSV column by its header, or a JSON field by its dotted path (`result.fat`).
//! - `TYPE`: how the text or JSON value is read: `float` (default), `int`, `uint`, `bool`,
//!   `string`. A value that is not of the type rejects the whole file.
//! - `[KEY=VALUE]`: only records whose field `KEY` equals `VALUE` (as text) give a
//!   reading, e.g. `fat_pct[silo=silo-1]` when one file holds a row per silo.

use backplane_config::AddressError;
use backplane_model::ScalarType;

/// One parsed address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub field: String,
    pub ty: ScalarType,
    /// `(key field, value)`: the records this address reads.
    pub filter: Option<(String, String)>,
}

const HINT: &str = "write FIELD, FIELD:TYPE or FIELD:TYPE[KEY=VALUE], e.g. \"fat_pct:float[silo=silo-1]\"; TYPE is float (default), int, uint, bool or string";

fn error(message: String) -> AddressError {
    AddressError {
        message,
        hint: Some(HINT.to_owned()),
    }
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let (rest, filter) = match text.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
            Some((rest, inner)) => {
                let Some((key, value)) = inner.split_once('=') else {
                    return Err(error(format!("the filter `[{inner}]` in `{text}` has no `=`")));
                };
                let key = key.trim();
                if key.is_empty() {
                    return Err(error(format!(
                        "the filter `[{inner}]` in `{text}` names no field"
                    )));
                }
                (rest, Some((key.to_owned(), value.trim().to_owned())))
            }
            None => (text, None),
        };
        let (field, ty) = match rest.rsplit_once(':') {
            Some((field, ty)) => {
                let ty = match ty.trim() {
                    "float" => ScalarType::Float,
                    "int" => ScalarType::Int,
                    "uint" => ScalarType::UInt,
                    "bool" => ScalarType::Bool,
                    "string" => ScalarType::String,
                    other => return Err(error(format!("unknown type `{other}` in `{text}`"))),
                };
                (field, ty)
            }
            None => (rest, ScalarType::Float),
        };
        let field = field.trim();
        if field.is_empty() {
            return Err(error(format!("`{text}` names no field")));
        }
        Ok(Address {
            field: field.to_owned(),
            ty,
            filter,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_name_a_field_an_optional_type_and_an_optional_record_filter() {
        let a = Address::parse("fat_pct").unwrap();
        assert_eq!(
            (a.field.as_str(), a.ty, a.filter),
            ("fat_pct", ScalarType::Float, None)
        );
        let a = Address::parse("cells:uint[silo = silo-1]").unwrap();
        assert_eq!(a.ty, ScalarType::UInt);
        assert_eq!(a.filter, Some(("silo".into(), "silo-1".into())));
        let a = Address::parse("result.ok:bool").unwrap();
        assert_eq!((a.field.as_str(), a.ty), ("result.ok", ScalarType::Bool));
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (text, needle) in [
            ("", "names no field"),
            (":int", "names no field"),
            ("x:real", "unknown type `real`"),
            ("x[silo]", "has no `=`"),
            ("x[=1]", "names no field"),
        ] {
            let e = Address::parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }
}
