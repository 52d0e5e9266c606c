//! Engineering units and conversions between them.
//!
//! The table below is the documented set (see `docs/configuration.md`, "Units"). Besides it,
//! a plain word names a count unit (`bottle`, `pallet`) and a word over a time unit names a
//! rate of it (`bottle/min`, `pallet/h`); counts convert only to rates and counts of the same
//! word. Every conversion is linear (`y = gain * x + offset`), so it is compiled once at
//! configuration time into a scale step and costs one multiply-add per sample.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// The physical quantity a unit measures; units convert only within one dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    Temperature,
    Pressure,
    Length,
    Area,
    Volume,
    Mass,
    VolumeFlow,
    MassFlow,
    Time,
    Frequency,
    Speed,
    Ratio,
    Density,
    Power,
    Energy,
    Voltage,
    Current,
    Conductivity,
    Acidity,
    /// Items counted, e.g. bottles.
    Count(Arc<str>),
    /// Items per second, e.g. bottles per minute.
    CountRate(Arc<str>),
}

/// A unit: `value_in_si = value * factor + offset`.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    symbol: Arc<str>,
    dimension: Dimension,
    factor: f64,
    offset: f64,
}

/// (symbols, dimension, factor to the dimension's base unit, offset).
type Row = (&'static [&'static str], Dimension, f64, f64);

fn table() -> &'static [Row] {
    use Dimension::*;
    const GAL: f64 = 3.785_411_784e-3; // US gallon in m3
    static TABLE: std::sync::OnceLock<Vec<Row>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        vec![
            (&["K"], Temperature, 1.0, 0.0),
            (&["degC", "°C"], Temperature, 1.0, 273.15),
            (&["degF", "°F"], Temperature, 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
            (&["Pa"], Pressure, 1.0, 0.0),
            (&["kPa"], Pressure, 1e3, 0.0),
            (&["MPa"], Pressure, 1e6, 0.0),
            (&["mbar"], Pressure, 100.0, 0.0),
            (&["bar"], Pressure, 1e5, 0.0),
            (&["psi"], Pressure, 6_894.757_293_168, 0.0),
            (&["m"], Length, 1.0, 0.0),
            (&["cm"], Length, 1e-2, 0.0),
            (&["mm"], Length, 1e-3, 0.0),
            (&["km"], Length, 1e3, 0.0),
            (&["in"], Length, 0.0254, 0.0),
            (&["ft"], Length, 0.3048, 0.0),
            (&["m2"], Area, 1.0, 0.0),
            (&["m3"], Volume, 1.0, 0.0),
            (&["L", "l"], Volume, 1e-3, 0.0),
            (&["mL", "ml"], Volume, 1e-6, 0.0),
            (&["hL", "hl"], Volume, 0.1, 0.0),
            (&["gal"], Volume, GAL, 0.0),
            (&["kg"], Mass, 1.0, 0.0),
            (&["g"], Mass, 1e-3, 0.0),
            (&["t"], Mass, 1e3, 0.0),
            (&["lb"], Mass, 0.453_592_37, 0.0),
            (&["m3/s"], VolumeFlow, 1.0, 0.0),
            (&["m3/h"], VolumeFlow, 1.0 / 3600.0, 0.0),
            (&["L/s", "l/s"], VolumeFlow, 1e-3, 0.0),
            (&["L/min", "l/min"], VolumeFlow, 1e-3 / 60.0, 0.0),
            (&["L/h", "l/h"], VolumeFlow, 1e-3 / 3600.0, 0.0),
            (&["hL/h", "hl/h"], VolumeFlow, 0.1 / 3600.0, 0.0),
            (&["gal/min", "gpm"], VolumeFlow, GAL / 60.0, 0.0),
            (&["kg/s"], MassFlow, 1.0, 0.0),
            (&["kg/min"], MassFlow, 1.0 / 60.0, 0.0),
            (&["kg/h"], MassFlow, 1.0 / 3600.0, 0.0),
            (&["t/h"], MassFlow, 1e3 / 3600.0, 0.0),
            (&["s"], Time, 1.0, 0.0),
            (&["ms"], Time, 1e-3, 0.0),
            (&["min"], Time, 60.0, 0.0),
            (&["h"], Time, 3600.0, 0.0),
            (&["Hz"], Frequency, 1.0, 0.0),
            (&["rpm", "1/min"], Frequency, 1.0 / 60.0, 0.0),
            (&["m/s"], Speed, 1.0, 0.0),
            (&["m/min"], Speed, 1.0 / 60.0, 0.0),
            (&["km/h"], Speed, 1.0 / 3.6, 0.0),
            (&["1", "ratio"], Ratio, 1.0, 0.0),
            (&["%"], Ratio, 1e-2, 0.0),
            (&["ppm"], Ratio, 1e-6, 0.0),
            (&["kg/m3", "g/L", "g/l"], Density, 1.0, 0.0),
            (&["g/cm3", "kg/L", "kg/l"], Density, 1e3, 0.0),
            (&["W"], Power, 1.0, 0.0),
            (&["kW"], Power, 1e3, 0.0),
            (&["MW"], Power, 1e6, 0.0),
            (&["J"], Energy, 1.0, 0.0),
            (&["kJ"], Energy, 1e3, 0.0),
            (&["MJ"], Energy, 1e6, 0.0),
            (&["Wh"], Energy, 3600.0, 0.0),
            (&["kWh"], Energy, 3.6e6, 0.0),
            (&["V"], Voltage, 1.0, 0.0),
            (&["mV"], Voltage, 1e-3, 0.0),
            (&["A"], Current, 1.0, 0.0),
            (&["mA"], Current, 1e-3, 0.0),
            (&["S/m"], Conductivity, 1.0, 0.0),
            (&["mS/cm"], Conductivity, 0.1, 0.0),
            (&["uS/cm", "µS/cm"], Conductivity, 1e-4, 0.0),
            (&["pH"], Acidity, 1.0, 0.0),
        ]
    })
}

impl Unit {
    /// Looks a unit up by symbol, or reads it as a count (`bottle`) or count rate
    /// (`bottle/min`). Returns `None` for anything else.
    pub fn parse(symbol: &str) -> Option<Unit> {
        if let Some((symbols, dimension, factor, offset)) = table().iter().find(|row| row.0.contains(&symbol))
        {
            return Some(Unit {
                symbol: symbols[0].into(),
                dimension: dimension.clone(),
                factor: *factor,
                offset: *offset,
            });
        }
        let is_word = |w: &str| !w.is_empty() && w.len() <= 32 && w.bytes().all(|c| c.is_ascii_lowercase());
        if let Some((word, per)) = symbol.split_once('/') {
            let seconds = match per {
                "s" => 1.0,
                "min" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            return is_word(word).then(|| Unit {
                symbol: symbol.into(),
                dimension: Dimension::CountRate(word.into()),
                factor: 1.0 / seconds,
                offset: 0.0,
            });
        }
        is_word(symbol).then(|| Unit {
            symbol: symbol.into(),
            dimension: Dimension::Count(symbol.into()),
            factor: 1.0,
            offset: 0.0,
        })
    }

    /// The canonical symbol (aliases such as `°C` are stored as `degC`).
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    pub fn dimension(&self) -> &Dimension {
        &self.dimension
    }

    /// `(gain, offset)` such that `value_in_to = gain * value_in_self + offset`, or `None`
    /// when the dimensions differ.
    pub fn conversion_to(&self, to: &Unit) -> Option<(f64, f64)> {
        (self.dimension == to.dimension)
            .then(|| (self.factor / to.factor, (self.offset - to.offset) / to.factor))
    }

    /// Every symbol of the documented table, for hints and docs.
    pub fn known_symbols() -> impl Iterator<Item = &'static str> {
        table().iter().flat_map(|row| row.0.iter().copied())
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol)
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(x: f64, from: &str, to: &str) -> f64 {
        let (gain, offset) = Unit::parse(from)
            .unwrap()
            .conversion_to(&Unit::parse(to).unwrap())
            .unwrap();
        gain * x + offset
    }

    #[test]
    fn temperatures_convert_with_offsets() {
        assert!((convert(212.0, "degF", "degC") - 100.0).abs() < 1e-9);
        assert!((convert(0.0, "°C", "K") - 273.15).abs() < 1e-9);
        assert!((convert(-40.0, "degC", "degF") + 40.0).abs() < 1e-9);
    }

    #[test]
    fn flows_and_pressures_convert_by_factor() {
        assert!((convert(60.0, "L/min", "L/h") - 3600.0).abs() < 1e-9);
        assert!((convert(1.0, "m3/h", "L/h") - 1000.0).abs() < 1e-9);
        assert!((convert(1.0, "bar", "kPa") - 100.0).abs() < 1e-9);
        assert!((convert(14.503_773_8, "psi", "bar") - 1.0).abs() < 1e-6);
    }

    #[test]
    fn counts_convert_only_to_the_same_item() {
        assert!((convert(120.0, "bottle/min", "bottle/h") - 7200.0).abs() < 1e-9);
        let bottles = Unit::parse("bottle/min").unwrap();
        assert!(
            bottles
                .conversion_to(&Unit::parse("pallet/min").unwrap())
                .is_none()
        );
        assert!(bottles.conversion_to(&Unit::parse("degC").unwrap()).is_none());
    }

    #[test]
    fn unknown_symbols_are_rejected() {
        assert!(Unit::parse("furlong/fortnight").is_none());
        assert!(Unit::parse("Bottle").is_none());
        assert!(Unit::parse("").is_none());
    }
}
