//! The `opcua-server` sink's configuration keys, read through the config crate's [`Table`]
//! so every key is checked and every error has a position. See
//! docs/connectors/opcua-server.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use backplane_config::Table;
use backplane_opcua::config::{Mode, Policy};

/// The operation limits the server enforces and advertises (ServerCapabilities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_sessions: usize,
    pub max_subscriptions_per_session: usize,
    pub max_monitored_items_per_subscription: usize,
    pub max_nodes_per_read: usize,
    pub max_nodes_per_write: usize,
    pub max_nodes_per_browse: usize,
    pub max_nodes_per_history_read: usize,
    pub max_nodes_per_method_call: usize,
    pub max_monitored_items_per_call: usize,
    /// Largest message (request or response), bytes.
    pub max_message_size: usize,
    pub max_chunk_count: usize,
    /// Largest queue a monitored item may ask for.
    pub max_queue_size: usize,
    /// Fastest sampling a monitored item may ask for.
    pub min_sampling_interval: Duration,
    /// Most points one HistoryRead answers per node (then a continuation point).
    pub max_history_values: usize,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_sessions: 50,
            max_subscriptions_per_session: 10,
            max_monitored_items_per_subscription: 10_000,
            max_nodes_per_read: 1_000,
            max_nodes_per_write: 100,
            max_nodes_per_browse: 1_000,
            max_nodes_per_history_read: 100,
            max_nodes_per_method_call: 10,
            max_monitored_items_per_call: 1_000,
            max_message_size: 4 * 1024 * 1024,
            max_chunk_count: 64,
            max_queue_size: 100,
            min_sampling_interval: Duration::from_millis(100),
            max_history_values: 10_000,
        }
    }
}

/// Everything an `opcua-server` sink reads from its `[[sinks]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSettings {
    /// Where the server accepts connections.
    pub listen: SocketAddr,
    /// The host name in endpoint URLs; default: the listen address (or this machine's
    /// name when listening on every interface).
    pub host_name: Option<String>,
    /// Endpoints are offered for every policy × mode; `None` only when listed.
    pub policies: Vec<Policy>,
    pub modes: Vec<Mode>,
    /// Sessions without a user (off unless set).
    pub anonymous: bool,
    /// Holds `own/`, `private/`, `trusted/`, `rejected/`; default
    /// `DATA_DIR/opcua-server/pki`.
    pub pki_dir: Option<PathBuf>,
    /// The URI of the plant's namespace; default `urn:backplane:GATEWAY:plant`.
    pub namespace_uri: Option<String>,
    /// The historian sink HistoryRead is answered from; default: the only one.
    pub historian: Option<String>,
    pub limits: ServerLimits,
}

impl ServerSettings {
    /// The plant namespace's URI for `gateway`.
    pub fn namespace_uri(&self, gateway: &str) -> String {
        self.namespace_uri
            .clone()
            .unwrap_or_else(|| format!("urn:backplane:{gateway}:plant"))
    }
}

const POLICIES: &str =
    "Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss, or \"None\" (no security)";

fn parse_list<T>(
    table: &mut Table<'_>,
    key: &str,
    parse: impl Fn(&str) -> Option<T>,
    hint: &str,
    ok: &mut bool,
) -> Option<Vec<T>> {
    let item = table.optional_item(key)?;
    let Some(items) = item.as_array() else {
        table.error(
            key,
            format!("`{key}` must be a list of names"),
            Some(hint.to_owned()),
        );
        *ok = false;
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        match item.as_str().and_then(&parse) {
            Some(v) => out.push(v),
            None => {
                item.error(format!("not one of the `{key}`"), Some(hint.to_owned()));
                *ok = false;
            }
        }
    }
    if out.is_empty() && *ok {
        table.error(key, format!("`{key}` is empty"), Some(hint.to_owned()));
        *ok = false;
    }
    Some(out)
}

fn bounded(
    table: &mut Table<'_>,
    key: &str,
    default: usize,
    range: std::ops::RangeInclusive<u64>,
    ok: &mut bool,
) -> usize {
    match table.optional_u64(key) {
        None => default,
        Some(n) if range.contains(&n) => n as usize,
        Some(n) => {
            table.error(
                key,
                format!("{key} = {n} is outside {}..={}", range.start(), range.end()),
                None,
            );
            *ok = false;
            default
        }
    }
}

fn parse_limits(table: &mut Table<'_>, ok: &mut bool) -> ServerLimits {
    let d = ServerLimits::default();
    let Some(mut t) = table.optional_table("limits") else {
        return d;
    };
    let limits = ServerLimits {
        max_sessions: bounded(&mut t, "max_sessions", d.max_sessions, 1..=10_000, ok),
        max_subscriptions_per_session: bounded(
            &mut t,
            "max_subscriptions_per_session",
            d.max_subscriptions_per_session,
            1..=1_000,
            ok,
        ),
        max_monitored_items_per_subscription: bounded(
            &mut t,
            "max_monitored_items_per_subscription",
            d.max_monitored_items_per_subscription,
            1..=1_000_000,
            ok,
        ),
        max_nodes_per_read: bounded(
            &mut t,
            "max_nodes_per_read",
            d.max_nodes_per_read,
            1..=100_000,
            ok,
        ),
        max_nodes_per_write: bounded(
            &mut t,
            "max_nodes_per_write",
            d.max_nodes_per_write,
            1..=100_000,
            ok,
        ),
        max_nodes_per_browse: bounded(
            &mut t,
            "max_nodes_per_browse",
            d.max_nodes_per_browse,
            1..=100_000,
            ok,
        ),
        max_nodes_per_history_read: bounded(
            &mut t,
            "max_nodes_per_history_read",
            d.max_nodes_per_history_read,
            1..=10_000,
            ok,
        ),
        max_nodes_per_method_call: bounded(
            &mut t,
            "max_nodes_per_method_call",
            d.max_nodes_per_method_call,
            1..=1_000,
            ok,
        ),
        max_monitored_items_per_call: bounded(
            &mut t,
            "max_monitored_items_per_call",
            d.max_monitored_items_per_call,
            1..=100_000,
            ok,
        ),
        max_message_size: bounded(
            &mut t,
            "max_message_size",
            d.max_message_size,
            8_192..=256 * 1024 * 1024,
            ok,
        ),
        max_chunk_count: bounded(&mut t, "max_chunk_count", d.max_chunk_count, 1..=4_096, ok),
        max_queue_size: bounded(&mut t, "max_queue_size", d.max_queue_size, 1..=10_000, ok),
        min_sampling_interval: match t.optional_duration("min_sampling_interval") {
            None => d.min_sampling_interval,
            Some(i) if i >= Duration::from_millis(10) => i,
            Some(_) => {
                t.error(
                    "min_sampling_interval",
                    "`min_sampling_interval` must be at least 10ms",
                    None,
                );
                *ok = false;
                d.min_sampling_interval
            }
        },
        max_history_values: bounded(
            &mut t,
            "max_history_values",
            d.max_history_values,
            1..=1_000_000,
            ok,
        ),
    };
    t.finish();
    limits
}

/// Reads the keys of one `[[sinks]]` table of kind `opcua-server`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<ServerSettings> {
    let mut ok = true;
    let listen = match table.optional_str("listen") {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 4840))),
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                table.error(
                    "listen",
                    format!("`{text}` is not an IP address and port"),
                    Some("e.g. \"0.0.0.0:4840\" (every interface) or \"127.0.0.1:4840\"".into()),
                );
                None
            }
        },
    };
    let host_name = table.optional_str("host_name").map(str::to_owned);
    let policies = parse_list(table, "security_policies", Policy::parse, POLICIES, &mut ok)
        .unwrap_or_else(|| Policy::SECURE.to_vec());
    let modes = parse_list(
        table,
        "security_modes",
        Mode::parse,
        "\"sign\", \"sign-and-encrypt\" (and \"none\" with security policy None)",
        &mut ok,
    )
    .unwrap_or_else(|| vec![Mode::SignAndEncrypt]);
    if policies.iter().any(|p| *p != Policy::None) && modes.iter().all(|m| *m == Mode::None) {
        table.error(
            "security_modes",
            "secure policies need mode \"sign\" or \"sign-and-encrypt\"",
            None,
        );
        ok = false;
    }
    if policies.contains(&Policy::None) && !modes.contains(&Mode::None) && ok {
        table.error(
            "security_modes",
            "security policy None needs mode \"none\" in `security_modes`",
            Some("add \"none\", or remove \"None\" from `security_policies`".into()),
        );
        ok = false;
    }
    let anonymous = table.optional_bool("anonymous").unwrap_or(false);
    let pki_dir = table.optional_str("pki_dir").map(PathBuf::from);
    let namespace_uri = table.optional_str("namespace_uri").map(str::to_owned);
    let historian = table.optional_str("historian").map(str::to_owned);
    let limits = parse_limits(table, &mut ok);
    let listen = listen?;
    ok.then_some(ServerSettings {
        listen,
        host_name,
        policies,
        modes,
        anonymous,
        pki_dir,
        namespace_uri,
        historian,
        limits,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    fn parse(text: &str) -> (Option<ServerSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn defaults_are_secure_and_local() {
        let (settings, errors) = parse("");
        assert!(errors.is_empty(), "{errors:?}");
        let s = settings.unwrap();
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 4840)));
        assert_eq!(s.policies, Policy::SECURE.to_vec());
        assert_eq!(s.modes, vec![Mode::SignAndEncrypt]);
        assert!(!s.anonymous);
        assert_eq!(s.namespace_uri("gw"), "urn:backplane:gw:plant");
    }

    #[test]
    fn policy_none_needs_mode_none_and_deprecated_policies_are_refused() {
        let (s, errors) = parse("security_policies = [\"None\"]");
        assert!(s.is_none());
        assert!(errors.iter().any(|e| e.contains("needs mode")), "{errors:?}");
        let (s, errors) =
            parse("security_policies = [\"None\"]\nsecurity_modes = [\"none\"]\nanonymous = true");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.unwrap().policies, vec![Policy::None]);
        let (s, errors) = parse("security_policies = [\"Basic128Rsa15\"]");
        assert!(s.is_none());
        assert!(
            errors.iter().any(|e| e.contains("security_policies")),
            "{errors:?}"
        );
    }

    #[test]
    fn limits_are_bounded() {
        let (s, errors) = parse("[limits]\nmax_sessions = 3\nmax_message_size = 65536");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.limits.max_sessions, 3);
        assert_eq!(s.limits.max_message_size, 65_536);
        let (s, errors) = parse("[limits]\nmax_sessions = 0");
        assert!(s.is_none());
        assert!(errors.iter().any(|e| e.contains("max_sessions")), "{errors:?}");
    }
}
