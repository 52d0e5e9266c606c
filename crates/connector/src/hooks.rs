//! Optional hooks a kind offers besides running: discovery ([`Browser`], for `backplane
//! browse URL`) and simulated devices ([`Simulator`], for `backplane simulate` and the
//! demo). They are plain data and function pointers: the binary turns them into
//! command-line commands, so protocol crates need no CLI library.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use futures::future::BoxFuture;
use serde::Serialize;

/// One option of a browse command, e.g. `--unit 1`.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// The long flag without dashes, e.g. `unit`.
    pub name: &'static str,
    pub help: &'static str,
    /// The value's placeholder (e.g. `ID`); `None` for a switch that takes no value.
    pub value: Option<&'static str>,
    /// Shown in help; applied by the hook itself when the option is absent.
    pub default: Option<&'static str>,
    /// May be given more than once (values are kept in order).
    pub repeated: bool,
    /// Names something on the gateway's own machine (a file, an environment variable):
    /// offered on the command line only, never through the API's discovery.
    pub local: bool,
}

impl OptionSpec {
    /// An option that takes a value.
    pub const fn value(name: &'static str, placeholder: &'static str, help: &'static str) -> OptionSpec {
        OptionSpec {
            name,
            help,
            value: Some(placeholder),
            default: None,
            repeated: false,
            local: false,
        }
    }

    /// A switch.
    pub const fn switch(name: &'static str, help: &'static str) -> OptionSpec {
        OptionSpec {
            name,
            help,
            value: None,
            default: None,
            repeated: false,
            local: false,
        }
    }

    pub const fn default(mut self, default: &'static str) -> OptionSpec {
        self.default = Some(default);
        self
    }

    pub const fn repeated(mut self) -> OptionSpec {
        self.repeated = true;
        self
    }

    /// Marks an option that names something on the gateway's machine (see [`OptionSpec::local`]).
    pub const fn local(mut self) -> OptionSpec {
        self.local = true;
        self
    }
}

/// The options given on the command line, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    values: BTreeMap<String, Vec<String>>,
}

impl Options {
    /// Records a value (or `"true"` for a switch).
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.values.entry(name.to_owned()).or_default().push(value.into());
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every value of a repeatable list option, whether given as `--name a,b` or as
    /// `--name a --name b`, trimmed, empty items dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The value of `name` as a duration such as `500ms` or `10s`, `default` when absent;
    /// the error names the option.
    pub fn duration_or(
        &self,
        name: &str,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, String> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => {
                backplane_config::parse_duration(text).map_err(|e| format!("--{name} {text:?}: {e}"))
            }
        }
    }

    /// Whether the switch `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The value of `name` parsed as `T`, `default` when absent; the error names the option.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|e| format!("--{name} {text:?}: {e}")),
        }
    }
}

/// What `backplane browse` and the API's discovery run: given the URL and options, it
/// returns what it found (the report to print, and the same findings as data) or an error
/// for the engineer.
pub type BrowseFn = fn(url: String, options: Options) -> BoxFuture<'static, Result<BrowseReport, String>>;

/// What a browser found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BrowseReport {
    /// The report `backplane browse` prints (addresses found, bindings to paste).
    pub text: String,
    /// TOML for a source reading this device, to paste above the chosen bindings; empty
    /// when the browser has none to offer.
    pub source: String,
    /// Every readable address found, each with the ways its value can be read.
    pub signals: Vec<Signal>,
}

impl BrowseReport {
    /// A report with text only (a browser without structured findings).
    pub fn text(text: String) -> BrowseReport {
        BrowseReport {
            text,
            ..BrowseReport::default()
        }
    }
}

/// One address a browser found: a Modbus register (with its candidate decodings) or an
/// OPC UA variable (with its one data type).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signal {
    /// The address as found, e.g. `hr:100` or `ns=2;s=Filler2.Speed`.
    pub address: String,
    /// A valid attribute name to start from, e.g. `hr_100` or `filler2_speed`.
    pub name: String,
    /// Where it sits and what it is, for people: a browse path, data type and access.
    pub description: String,
    /// The ways to read it, the most likely first.
    pub decodings: Vec<Decoding>,
}

/// One way to read a [`Signal`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decoding {
    /// Short, for a list: `u16`, `f32 CDAB`, `Double`.
    pub label: String,
    /// The model attribute type it gives (`float`, `uint`, `bool`, ...); `None` when
    /// Backplane has no type for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<String>,
    /// The value read this way now, as text.
    pub value: String,
    /// The binding to paste into an asset, e.g.
    /// `bindings.hr_100 = { address = "hr:100:f32:CDAB" }`.
    pub binding: String,
}

/// A 32-bit float as register and DB scans show it: plain between 1e-4 and 1e7 (at most
/// six decimals), else in scientific notation, so a misread pair of words stays short.
pub fn float_text(x: f32) -> String {
    if x == 0.0 || (x.is_finite() && (1e-4..1e7).contains(&x.abs())) {
        let text = format!("{x}");
        if text.len() > 12 { format!("{x:.6}") } else { text }
    } else {
        format!("{x:.3e}")
    }
}

/// Whether a float shown by [`float_text`] looks like a value someone configured (e.g.
/// 23.5): non-zero, between 0.01 and 1e6, at most four significant digits. Scans rank such
/// readings first.
pub fn plausible_float(text: &str) -> bool {
    let Ok(x) = text.parse::<f32>() else { return false };
    let digits = text
        .trim_start_matches('-')
        .replace('.', "")
        .trim_matches('0')
        .len();
    x != 0.0 && (1e-2..1e6).contains(&x.abs()) && digits <= 4
}

/// Discovery for the URL schemes a kind connects to.
#[derive(Clone, Copy, Debug)]
pub struct Browser {
    /// URL schemes without `://`, e.g. `["modbus", "tcp", "rtu", "rtu+tcp"]`.
    pub schemes: &'static [&'static str],
    /// Those of `schemes` that open a device of the gateway's machine (a serial line)
    /// rather than a network address: `backplane browse` only, never the API.
    pub local_schemes: &'static [&'static str],
    /// One line for help, e.g. "Scan a Modbus device's addresses".
    pub about: &'static str,
    pub options: &'static [OptionSpec],
    pub run: BrowseFn,
}

/// The discovery the API offers: every kind's [`Browser`], and the options the gateway
/// sets itself (e.g. its OPC UA PKI directory), which callers cannot give. Registered by
/// the binary as an engine service under [`Discovery::SERVICE`].
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub browsers: Vec<Browser>,
    /// Applied to a browser that has an option of that name, over anything given.
    pub fixed: Options,
}

impl Discovery {
    pub const SERVICE: &'static str = "discovery";

    /// The browser for `url`'s scheme (the text before `://`), case-insensitively.
    pub fn browser_for(&self, url: &str) -> Option<&Browser> {
        let (scheme, _) = url.split_once("://")?;
        self.browsers
            .iter()
            .find(|b| b.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
    }
}

/// Where a simulator is asked to run.
#[derive(Clone, Debug)]
pub struct SimulatorStart {
    pub listen: SocketAddr,
    /// The gateway's data directory (e.g. for a trust list the simulator writes into).
    pub data_dir: PathBuf,
}

/// A simulator that runs until stopped.
pub struct RunningSimulator {
    /// Where it listens.
    pub address: SocketAddr,
    /// The URL a configuration uses to reach it, e.g. `tcp://127.0.0.1:5020`.
    pub url: String,
    /// A line for the person who started it.
    pub banner: String,
    stop: Box<dyn FnOnce() + Send>,
}

impl fmt::Debug for RunningSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningSimulator")
            .field("address", &self.address)
            .field("url", &self.url)
            .finish()
    }
}

impl RunningSimulator {
    pub fn new(
        address: SocketAddr,
        url: String,
        banner: String,
        stop: impl FnOnce() + Send + 'static,
    ) -> RunningSimulator {
        RunningSimulator {
            address,
            url,
            banner,
            stop: Box::new(stop),
        }
    }

    pub fn stop(self) {
        (self.stop)()
    }
}

/// Starts a simulator.
pub type StartFn = fn(SimulatorStart) -> BoxFuture<'static, Result<RunningSimulator, String>>;

/// A simulated device a kind can run (for demos and trying configurations out).
#[derive(Clone, Copy, Debug)]
pub struct Simulator {
    /// The name `backplane simulate NAME` takes, e.g. `modbus-filler`.
    pub name: &'static str,
    pub about: &'static str,
    /// Where it listens by default (where the example configurations expect it).
    pub default_listen: SocketAddr,
    pub start: StartFn,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn floats_print_compactly_and_round_ones_count_as_plausible() {
        assert_eq!(float_text(123.5), "123.5");
        assert_eq!(float_text(0.0), "0");
        assert_eq!(float_text(1e-30), "1.000e-30");
        assert_eq!(float_text(f32::NAN), "NaN");
        assert!(plausible_float("23.5"));
        assert!(!plausible_float("0"));
        assert!(!plausible_float("3.80188"));
        assert!(!plausible_float("1.000e-30"));
    }

    #[test]
    fn list_options_take_commas_and_repeats_and_durations_name_the_option() {
        let mut o = Options::default();
        o.push("select", "a, b");
        o.push("select", "c,");
        o.push("timeout", "250ms");
        o.push("bad", "soon");
        assert_eq!(o.list("select"), ["a", "b", "c"]);
        assert!(o.list("absent").is_empty());
        assert_eq!(
            o.duration_or("timeout", Duration::ZERO),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            o.duration_or("absent", Duration::from_secs(3)),
            Ok(Duration::from_secs(3))
        );
        assert!(
            o.duration_or("bad", Duration::ZERO)
                .unwrap_err()
                .starts_with("--bad \"soon\"")
        );
    }
}
