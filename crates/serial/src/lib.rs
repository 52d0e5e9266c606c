//! A local serial line: its settings as a source's URL writes them after the scheme
//! (`/dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1&flow_control=none`) and
//! opening the port with tokio-serial. Shared by the modbus source (`rtu://`) and the ascii
//! source (`serial://`), so both read and open a port alike; each gives its own defaults.

use std::io;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowControl {
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// A serial line's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialLine {
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
    pub flow_control: FlowControl,
}

impl SerialLine {
    /// Parses what follows `SCHEME://` in a URL: the port's path and `?key=value&...`
    /// settings (`baud`, `parity`, `data_bits`, `stop_bits`, `flow_control`). What is not
    /// given is taken from `default` (its path aside). Errors are `(message, hint)`.
    pub fn parse(scheme: &str, rest: &str, default: &SerialLine) -> Result<SerialLine, (String, String)> {
        let hint = || {
            let example = SerialLine {
                path: "/dev/ttyUSB0".into(),
                ..default.clone()
            };
            format!("write e.g. {}", example.url(scheme))
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(("a serial URL needs the port's path".to_owned(), hint()));
        }
        let mut line = SerialLine {
            path: path.to_owned(),
            ..default.clone()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |what: &str| (format!("`{pair}`: {what}"), hint());
            match key {
                "baud" => {
                    line.baud = value
                        .parse()
                        .ok()
                        .filter(|b| (50..=4_000_000).contains(b))
                        .ok_or_else(|| bad("baud must be 50 to 4000000"))?;
                }
                "parity" => {
                    line.parity = match value {
                        "N" | "none" => Parity::None,
                        "E" | "even" => Parity::Even,
                        "O" | "odd" => Parity::Odd,
                        _ => return Err(bad("parity is N, E or O")),
                    }
                }
                "data_bits" => {
                    line.data_bits = value
                        .parse()
                        .ok()
                        .filter(|b| (5..=8).contains(b))
                        .ok_or_else(|| bad("data_bits is 5 to 8"))?;
                }
                "stop_bits" => {
                    line.stop_bits = value
                        .parse()
                        .ok()
                        .filter(|b| (1..=2).contains(b))
                        .ok_or_else(|| bad("stop_bits is 1 or 2"))?;
                }
                "flow_control" => {
                    line.flow_control = match value {
                        "none" => FlowControl::None,
                        "software" | "xonxoff" => FlowControl::Software,
                        "hardware" | "rtscts" => FlowControl::Hardware,
                        _ => {
                            return Err(bad(
                                "flow_control is none, software (XON/XOFF) or hardware (RTS/CTS)",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(bad(
                        "unknown parameter (baud, parity, data_bits, stop_bits, flow_control)",
                    ));
                }
            }
        }
        Ok(line)
    }

    /// Opens the port with these settings.
    pub fn open(&self) -> io::Result<tokio_serial::SerialStream> {
        use tokio_serial::SerialPortBuilderExt;
        let parity = match self.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        };
        let data_bits = match self.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        };
        let stop_bits = match self.stop_bits {
            2 => tokio_serial::StopBits::Two,
            _ => tokio_serial::StopBits::One,
        };
        let flow = match self.flow_control {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Software => tokio_serial::FlowControl::Software,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
        };
        tokio_serial::new(&self.path, self.baud)
            .parity(parity)
            .data_bits(data_bits)
            .stop_bits(stop_bits)
            .flow_control(flow)
            .open_native_async()
            .map_err(|e| io::Error::other(format!("serial port {}: {e}", self.path)))
    }
}

impl SerialLine {
    /// A line with 8 data bits, 1 stop bit and no flow control, e.g. as a default for
    /// [`SerialLine::parse`].
    pub fn new(path: &str, baud: u32, parity: Parity) -> SerialLine {
        SerialLine {
            path: path.to_owned(),
            baud,
            parity,
            data_bits: 8,
            stop_bits: 1,
            flow_control: FlowControl::None,
        }
    }

    /// The line as a URL of `scheme`, every setting written out (flow control only when
    /// there is some).
    pub fn url(&self, scheme: &str) -> String {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        let flow = match self.flow_control {
            FlowControl::None => "",
            FlowControl::Software => "&flow_control=software",
            FlowControl::Hardware => "&flow_control=hardware",
        };
        format!(
            "{scheme}://{}?baud={}&parity={parity}&data_bits={}&stop_bits={}{flow}",
            self.path, self.baud, self.data_bits, self.stop_bits
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(rest: &str) -> Result<SerialLine, (String, String)> {
        SerialLine::parse("serial", rest, &SerialLine::new("", 9600, Parity::None))
    }

    #[test]
    fn unset_settings_take_the_callers_defaults_and_print_back() {
        let line = parse("/dev/ttyUSB0").unwrap();
        assert_eq!(
            line.url("serial"),
            "serial:///dev/ttyUSB0?baud=9600&parity=N&data_bits=8&stop_bits=1"
        );
        let line = SerialLine::parse("rtu", "/dev/ttyS0", &SerialLine::new("", 19200, Parity::Even)).unwrap();
        assert_eq!((line.baud, line.parity), (19200, Parity::Even));
        let line =
            parse("/dev/ttyS1?baud=2400&parity=E&data_bits=7&stop_bits=2&flow_control=rtscts").unwrap();
        assert_eq!(
            (
                line.baud,
                line.parity,
                line.data_bits,
                line.stop_bits,
                line.flow_control
            ),
            (2400, Parity::Even, 7, 2, FlowControl::Hardware)
        );
        assert_eq!(
            line.url("serial"),
            "serial:///dev/ttyS1?baud=2400&parity=E&data_bits=7&stop_bits=2&flow_control=hardware"
        );
    }

    #[test]
    fn wrong_serial_settings_name_the_parameter() {
        for (url, needle) in [
            ("?baud=9600", "port's path"),
            ("/dev/x?baud=fast", "`baud=fast`"),
            ("/dev/x?parity=M", "parity is N, E or O"),
            ("/dev/x?data_bits=9", "data_bits is 5 to 8"),
            ("/dev/x?stop_bits=3", "stop_bits"),
            ("/dev/x?flow_control=dtr", "flow_control"),
            ("/dev/x?speed=1", "unknown parameter"),
        ] {
            let (message, hint) = parse(url).unwrap_err();
            assert!(message.contains(needle), "{url}: {message}");
            assert!(
                hint.starts_with("write e.g. serial:///dev/ttyUSB0?baud=9600"),
                "{hint}"
            );
        }
    }
}
