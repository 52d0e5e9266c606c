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

/// What `backplane browse` runs: given the URL and options, it returns the report to print
/// (addresses found, bindings to paste) or an error for the engineer.
pub type BrowseFn = fn(url: String, options: Options) -> BoxFuture<'static, Result<String, String>>;

/// Discovery for the URL schemes a kind connects to.
#[derive(Clone, Copy, Debug)]
pub struct Browser {
    /// URL schemes without `://`, e.g. `["modbus", "tcp", "rtu", "rtu+tcp"]`.
    pub schemes: &'static [&'static str],
    /// One line for help, e.g. "Scan a Modbus device's addresses".
    pub about: &'static str,
    pub options: &'static [OptionSpec],
    pub run: BrowseFn,
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
