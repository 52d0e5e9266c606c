//! Engineering units as OPC UA `EUInformation`: the UN/CEFACT (UNECE Recommendation 20)
//! common code of each unit Backplane knows, and the `unitId` OPC UA derives from it
//! (Part 8, 5.6.3). A unit without a common code (counts such as `bottle`, `pH`) keeps its
//! symbol as display name and `unitId` -1, as Part 8 prescribes for "no code".

use backplane_model::Unit;
use opcua::types::{EUInformation, LocalizedText, UAString};

/// The namespace of UNECE codes in `EUInformation.namespaceUri`.
pub const UNECE_NAMESPACE: &str = "http://www.opcfoundation.org/UA/units/un/cefact";

/// (Backplane symbol, UNECE common code). Symbols are the canonical ones of
/// `backplane_model::units` (aliases such as `°C` parse to `degC`).
const CODES: &[(&str, &str)] = &[
    ("K", "KEL"),
    ("degC", "CEL"),
    ("degF", "FAH"),
    ("Pa", "PAL"),
    ("kPa", "KPA"),
    ("MPa", "MPA"),
    ("mbar", "MBR"),
    ("bar", "BAR"),
    ("psi", "PS"),
    ("m", "MTR"),
    ("cm", "CMT"),
    ("mm", "MMT"),
    ("km", "KMT"),
    ("in", "INH"),
    ("ft", "FOT"),
    ("m2", "MTK"),
    ("m3", "MTQ"),
    ("L", "LTR"),
    ("mL", "MLT"),
    ("hL", "HLT"),
    ("gal", "GLL"),
    ("kg", "KGM"),
    ("g", "GRM"),
    ("t", "TNE"),
    ("lb", "LBR"),
    ("m3/s", "MQS"),
    ("m3/h", "MQH"),
    ("L/s", "G51"),
    ("L/min", "L2"),
    ("L/h", "E32"),
    ("kg/s", "KGS"),
    ("kg/min", "F31"),
    ("kg/h", "E93"),
    ("t/h", "E18"),
    ("s", "SEC"),
    ("ms", "C26"),
    ("min", "MIN"),
    ("h", "HUR"),
    ("Hz", "HTZ"),
    ("rpm", "RPM"),
    ("m/s", "MTS"),
    ("km/h", "KMH"),
    ("1", "C62"),
    ("%", "P1"),
    ("ppm", "59"),
    ("kg/m3", "KMQ"),
    ("W", "WTT"),
    ("kW", "KWT"),
    ("MW", "MAW"),
    ("J", "JOU"),
    ("kJ", "KJO"),
    ("Wh", "WHR"),
    ("kWh", "KWH"),
    ("V", "VLT"),
    ("mV", "2Z"),
    ("A", "AMP"),
    ("mA", "4K"),
    ("S/m", "D10"),
    ("mS/cm", "H61"),
    ("uS/cm", "G42"),
];

/// The UNECE common code of a unit, if it has one.
pub fn common_code(unit: &Unit) -> Option<&'static str> {
    let symbol = unit.symbol();
    CODES.iter().find(|(s, _)| *s == symbol).map(|(_, code)| *code)
}

/// Part 8's `unitId` of a common code: its (at most four) ASCII characters, big-endian.
pub fn unit_id(code: &str) -> i32 {
    code.bytes().take(4).fold(0i32, |id, c| (id << 8) | i32::from(c))
}

/// The `EngineeringUnits` property value of a unit.
pub fn eu_information(unit: &Unit) -> EUInformation {
    let code = common_code(unit);
    EUInformation {
        namespace_uri: UAString::from(UNECE_NAMESPACE),
        unit_id: code.map_or(-1, unit_id),
        display_name: LocalizedText::new("", unit.symbol()),
        description: LocalizedText::new("", code.unwrap_or(unit.symbol())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unit_ids_follow_part_8() {
        // Part 8's own examples: degree Celsius "CEL" and metre "MTR".
        assert_eq!(unit_id("CEL"), 4_408_652);
        assert_eq!(unit_id("MTR"), 5_067_858);
        assert_eq!(unit_id("P1"), 0x5031);
    }

    #[test]
    fn known_units_carry_their_common_code_and_counts_carry_none() {
        let eu = eu_information(&Unit::parse("°C").unwrap());
        assert_eq!(eu.unit_id, 4_408_652);
        assert_eq!(eu.display_name.text.as_ref(), "degC");
        assert_eq!(eu.namespace_uri.as_ref(), UNECE_NAMESPACE);
        assert_eq!(common_code(&Unit::parse("L/min").unwrap()), Some("L2"));
        let bottles = eu_information(&Unit::parse("bottle").unwrap());
        assert_eq!(bottles.unit_id, -1);
        assert_eq!(bottles.display_name.text.as_ref(), "bottle");
    }

    #[test]
    fn every_code_names_a_unit_backplane_knows() {
        for (symbol, code) in CODES {
            let unit = Unit::parse(symbol).unwrap_or_else(|| panic!("{symbol} is not a unit"));
            assert_eq!(
                unit.symbol(),
                *symbol,
                "{symbol} is an alias, not the canonical symbol"
            );
            assert!(code.len() <= 3, "{code}");
        }
    }
}
