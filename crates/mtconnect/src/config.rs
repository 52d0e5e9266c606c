//! The `mtconnect` source's configuration keys, read through the config crate's [`Table`]
//! so every key is checked and every error has a position. See docs/connectors/mtconnect.md.

use std::time::Duration;

use backplane_config::Table;

/// The largest `max_body` accepted: a sample of 10 000 observations is about 2 MB.
pub const MAX_BODY_LIMIT: u64 = 256 * 1024 * 1024;

/// Everything an `mtconnect` source reads from its `[[sources]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct MtConnectSettings {
    /// The agent's base URL, without a trailing slash, e.g. `http://10.0.0.7:5000`.
    pub url: String,
    /// Read one device of the agent (`/{device}/probe` ...); all devices when `None`.
    pub device: Option<String>,
    /// How often to ask for new observations (polling), or the `interval` of a stream.
    pub interval: Duration,
    /// At most this many observations per sample answer.
    pub count: u32,
    /// Use HTTP long poll / multipart streaming (`interval=`) where the agent offers it.
    pub streaming: bool,
    /// What a stream's `heartbeat` asks for; no part within twice this ends the stream.
    pub heartbeat: Duration,
    /// No answer (or no stream part) within this: the request failed.
    pub timeout: Duration,
    /// The largest answer (or stream part) read, in bytes.
    pub max_body: u64,
}

impl MtConnectSettings {
    /// Settings for `url` with every default (for browse and tests).
    pub fn defaults(url: &str) -> MtConnectSettings {
        MtConnectSettings {
            url: url.trim_end_matches('/').to_owned(),
            device: None,
            interval: Duration::from_millis(500),
            count: 1000,
            streaming: true,
            heartbeat: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            max_body: 8 * 1024 * 1024,
        }
    }

    /// The URL of `request` (`probe`, `current`, `sample`) for the configured device.
    pub fn endpoint(&self, request: &str) -> String {
        match &self.device {
            Some(d) => format!("{}/{d}/{request}", self.url),
            None => format!("{}/{request}", self.url),
        }
    }
}

/// Checks an agent URL: `http://host[:port][/prefix]`.
pub fn check_url(url: &str) -> Result<String, (String, String)> {
    let hint =
        || "write http://HOST:PORT, e.g. http://10.0.0.7:5000 (the agent's base URL, no /probe)".to_owned();
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| (format!("`{url}` is not an http:// URL"), hint()))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err((format!("`{url}` has no host"), hint()));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err((format!("`{url}` has a query, fragment or space"), hint()));
    }
    for request in ["/probe", "/current", "/sample"] {
        if rest.trim_end_matches('/').ends_with(request) {
            return Err((format!("`{url}` names the {request} request"), hint()));
        }
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Reads the keys of one `[[sources]]` table of kind `mtconnect`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<MtConnectSettings> {
    let mut ok = true;
    let url = table.required_str("url").and_then(|url| match check_url(url) {
        Ok(u) => Some(u),
        Err((message, hint)) => {
            table.error("url", message, Some(hint));
            None
        }
    });
    let device = table.optional_str("device").map(str::to_owned);
    if let Some(d) = &device
        && (d.is_empty() || d.contains(['/', '?', '#', ' ']))
    {
        table.error("device", format!("`{d}` is not a device name"), None);
        ok = false;
    }
    let mut duration = |table: &mut Table<'_>, key: &str, default: Duration, min: Duration| {
        let d = table.optional_duration(key).unwrap_or(default);
        if d < min {
            table.error(key, format!("`{key}` must be at least {min:?}"), None);
            ok = false;
        }
        d
    };
    let interval = duration(
        table,
        "interval",
        Duration::from_millis(500),
        Duration::from_millis(10),
    );
    let heartbeat = duration(
        table,
        "heartbeat",
        Duration::from_secs(10),
        Duration::from_millis(100),
    );
    let timeout = duration(
        table,
        "timeout",
        Duration::from_secs(5),
        Duration::from_millis(100),
    );
    let count = match table.optional_u64("count") {
        None => 1000,
        Some(c) if (1..=100_000).contains(&c) => c as u32,
        Some(c) => {
            table.error("count", format!("count = {c} is outside 1..=100000"), None);
            ok = false;
            1000
        }
    };
    let max_body = match table.optional_bytes("max_body") {
        None => 8 * 1024 * 1024,
        Some(b) if (4096..=MAX_BODY_LIMIT).contains(&b) => b,
        Some(b) => {
            table.error(
                "max_body",
                format!("max_body = {b} bytes is outside 4 KB..=256 MB"),
                Some("e.g. max_body = \"8MB\"".into()),
            );
            ok = false;
            8 * 1024 * 1024
        }
    };
    let streaming = table.optional_bool("streaming").unwrap_or(true);
    let url = url?;
    ok.then_some(MtConnectSettings {
        url,
        device,
        interval,
        count,
        streaming,
        heartbeat,
        timeout,
        max_body,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> (Option<MtConnectSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn minimal_source_takes_documented_defaults() {
        let (s, errors) = parse("url = \"http://10.0.0.7:5000/\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.unwrap(), MtConnectSettings::defaults("http://10.0.0.7:5000"));
    }

    #[test]
    fn device_selects_the_device_path() {
        let (s, _) = parse("url = \"http://agent:5000\"\ndevice = \"Mill\"\n");
        assert_eq!(s.unwrap().endpoint("sample"), "http://agent:5000/Mill/sample");
    }

    #[test]
    fn wrong_values_are_reported_with_hints() {
        let (s, errors) =
            parse("url = \"https://a/probe\"\ncount = 0\nmax_body = \"1GB\"\ninterval = \"1ms\"\n");
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "not an http:// URL",
            "count = 0",
            "max_body",
            "`interval` must be at least",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        let (_, errors) = parse("url = \"http://a:5000/probe\"\n");
        assert!(errors.join("").contains("names the /probe request"), "{errors:?}");
    }
}
