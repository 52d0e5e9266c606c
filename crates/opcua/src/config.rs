//! The `opcua` source's configuration keys, read through the config crate's [`Table`] so
//! every key is checked and every error has a position. See docs/connectors/opcua.md.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use backplane_config::{AddressError, Secret, Table};
use opcua::crypto::SecurityPolicy;
use opcua::types::MessageSecurityMode;

use crate::address::Address;

/// The security policies Backplane offers. Basic128Rsa15 and Basic256 are deprecated by
/// the OPC Foundation (broken SHA-1) and refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    None,
    Basic256Sha256,
    Aes128Sha256RsaOaep,
    Aes256Sha256RsaPss,
}

impl Policy {
    /// Strongest first: the order `auto` prefers.
    pub const SECURE: [Policy; 3] = [
        Policy::Aes256Sha256RsaPss,
        Policy::Aes128Sha256RsaOaep,
        Policy::Basic256Sha256,
    ];

    pub fn parse(text: &str) -> Option<Policy> {
        let key: String = text
            .rsplit('#')
            .next()
            .unwrap_or(text)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "none" => Some(Policy::None),
            "basic256sha256" => Some(Policy::Basic256Sha256),
            "aes128sha256rsaoaep" => Some(Policy::Aes128Sha256RsaOaep),
            "aes256sha256rsapss" => Some(Policy::Aes256Sha256RsaPss),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "None",
            Policy::Basic256Sha256 => "Basic256Sha256",
            Policy::Aes128Sha256RsaOaep => "Aes128_Sha256_RsaOaep",
            Policy::Aes256Sha256RsaPss => "Aes256_Sha256_RsaPss",
        }
    }

    pub fn to_opcua(self) -> SecurityPolicy {
        match self {
            Policy::None => SecurityPolicy::None,
            Policy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
            Policy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
            Policy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
        }
    }

    pub fn from_uri(uri: &str) -> Option<Policy> {
        match SecurityPolicy::from_uri(uri) {
            SecurityPolicy::None => Some(Policy::None),
            SecurityPolicy::Basic256Sha256 => Some(Policy::Basic256Sha256),
            SecurityPolicy::Aes128Sha256RsaOaep => Some(Policy::Aes128Sha256RsaOaep),
            SecurityPolicy::Aes256Sha256RsaPss => Some(Policy::Aes256Sha256RsaPss),
            _ => None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Message security mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    None,
    Sign,
    SignAndEncrypt,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        let key: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "none" => Some(Mode::None),
            "sign" => Some(Mode::Sign),
            "signandencrypt" => Some(Mode::SignAndEncrypt),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Sign => "sign",
            Mode::SignAndEncrypt => "sign-and-encrypt",
        }
    }

    pub fn to_opcua(self) -> MessageSecurityMode {
        match self {
            Mode::None => MessageSecurityMode::None,
            Mode::Sign => MessageSecurityMode::Sign,
            Mode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
        }
    }

    pub fn from_opcua(mode: MessageSecurityMode) -> Option<Mode> {
        match mode {
            MessageSecurityMode::None => Some(Mode::None),
            MessageSecurityMode::Sign => Some(Mode::Sign),
            MessageSecurityMode::SignAndEncrypt => Some(Mode::SignAndEncrypt),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which endpoint security to use: a fixed policy and mode, or `None` for "the strongest
/// the server offers" (never policy None).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Security {
    pub policy: Option<Policy>,
    pub mode: Option<Mode>,
}

/// How the session authenticates its user.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    Anonymous,
    UserName {
        user: String,
        password: Secret,
    },
    /// A user certificate (DER or PEM) and its private key (PEM, a secret reference).
    Certificate {
        certificate: PathBuf,
        private_key: Secret,
    },
}

/// A server-side data change filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Deadband {
    Absolute(f64),
    /// Percent of the variable's EURange (the server needs an EURange property).
    Percent(f64),
}

/// How a group's values are acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquisition {
    /// Monitored items in subscriptions: the server reports changes.
    Subscribe,
    /// The source reads every `period`.
    Poll,
}

/// Acquisition settings shared by a set of addresses: the source's default group, or a
/// named one (`[sources.groups.NAME]`, addresses join it with `group=NAME;`).
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub acquisition: Acquisition,
    /// Publishing interval (subscribe) or read period (poll).
    pub period: Duration,
    /// How often the server samples; `None`: the publishing interval.
    pub sampling_interval: Option<Duration>,
    pub queue_size: u32,
    pub deadband: Option<Deadband>,
}

/// Caps below the server's own operation limits (0: take the server's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub items_per_call: u32,
    pub nodes_per_read: u32,
    pub items_per_subscription: u32,
    pub subscriptions: u32,
}

/// Everything an `opcua` source reads from its `[[sources]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct OpcUaSettings {
    /// `opc.tcp://host:port[/path]`.
    pub url: String,
    pub security: Security,
    pub identity: Identity,
    /// Holds `own/`, `private/`, `trusted/`, `rejected/`; default `DATA_DIR/opcua/pki`.
    pub pki_dir: Option<PathBuf>,
    /// Check the server certificate's host name, application URI and validity dates
    /// (it must be trusted in any case).
    pub verify_server_certificate: bool,
    pub request_timeout: Duration,
    pub session_timeout: Duration,
    pub keep_alive: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_max: Duration,
    pub default_group: Group,
    pub groups: BTreeMap<String, Group>,
    pub limits: LimitOverrides,
    /// Whether the write gate may write through this source (off by default).
    pub writes: bool,
}

impl OpcUaSettings {
    /// The group an address belongs to.
    pub fn group_of(&self, address: &Address) -> Option<&Group> {
        match &address.group {
            None => Some(&self.default_group),
            Some(name) => self.groups.get(name),
        }
    }

    /// Checks an address against these settings (its group exists).
    pub fn check(&self, address: &Address) -> Result<(), AddressError> {
        if let Some(name) = &address.group
            && !self.groups.contains_key(name)
        {
            let known: Vec<&str> = self.groups.keys().map(String::as_str).collect();
            return Err(AddressError {
                message: format!("no group `{name}` on this source"),
                hint: Some(if known.is_empty() {
                    format!("define it: [sources.groups.{name}] period = \"100ms\"")
                } else {
                    format!("defined groups: {}", known.join(", "))
                }),
            });
        }
        Ok(())
    }
}

/// Checks `opc.tcp://host[:port][/path]`.
pub fn check_url(url: &str) -> Result<(), (String, String)> {
    let hint = "write opc.tcp://HOST:PORT, e.g. opc.tcp://192.168.1.20:4840".to_owned();
    let Some(rest) = url.strip_prefix("opc.tcp://") else {
        return Err(if url.contains("://") {
            (
                format!("`{url}`: only opc.tcp:// is supported"),
                "OPC UA over TCP (opc.tcp://); HTTPS and WebSocket transports are not".to_owned(),
            )
        } else {
            (format!("`{url}` is not an opc.tcp:// URL"), hint)
        });
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        return Err((format!("`{url}` has no host"), hint));
    }
    if let Some(port) = port
        && port.parse::<u16>().ok().filter(|p| *p > 0).is_none()
    {
        return Err((format!("port `{port}` in `{url}` is not 1 to 65535"), hint));
    }
    Ok(())
}

fn parse_group(table: &mut Table<'_>, defaults: Option<&Group>, ok: &mut bool) -> Group {
    let acquisition = match table.optional_str("mode") {
        None => defaults.map_or(Acquisition::Subscribe, |d| d.acquisition),
        Some("subscribe") => Acquisition::Subscribe,
        Some("poll") => Acquisition::Poll,
        Some(other) => {
            table.error(
                "mode",
                format!("unknown mode `{other}`"),
                Some("\"subscribe\" (the server reports changes) or \"poll\" (read every period)".into()),
            );
            *ok = false;
            Acquisition::Subscribe
        }
    };
    let period = match table.optional_duration("period") {
        Some(p) if p < Duration::from_millis(10) => {
            table.error("period", "`period` must be at least 10ms", None);
            *ok = false;
            p
        }
        Some(p) => p,
        None => defaults.map_or(Duration::from_secs(1), |d| d.period),
    };
    let sampling_interval = match table.optional_duration("sampling_interval") {
        Some(s) => Some(s),
        None => defaults.and_then(|d| d.sampling_interval),
    };
    let queue_size = match table.optional_u64("queue_size") {
        None => defaults.map_or(1, |d| d.queue_size),
        Some(q @ 1..=10_000) => q as u32,
        Some(q) => {
            table.error(
                "queue_size",
                format!("queue_size = {q} is outside 1..=10000"),
                None,
            );
            *ok = false;
            1
        }
    };
    let deadband = match table.optional_table("deadband") {
        None => defaults.and_then(|d| d.deadband),
        Some(mut d) => {
            let absolute = d.optional_f64("absolute");
            let percent = d.optional_f64("percent");
            let result = match (absolute, percent) {
                (Some(a), None) if a >= 0.0 => Some(Deadband::Absolute(a)),
                (None, Some(p)) if (0.0..=100.0).contains(&p) => Some(Deadband::Percent(p)),
                _ => {
                    table.error(
                        "deadband",
                        "a deadband is either { absolute = X } (X ≥ 0) or { percent = P } (0 to 100)",
                        Some("percent needs an EURange on the server's variable".into()),
                    );
                    *ok = false;
                    None
                }
            };
            d.finish();
            result
        }
    };
    if acquisition == Acquisition::Poll
        && let Some(key) = ["sampling_interval", "queue_size", "deadband"]
            .into_iter()
            .find(|k| table.has(k))
    {
        table.error(
            key,
            format!("`{key}` applies to subscriptions, not to mode = \"poll\""),
            Some("remove it, or use mode = \"subscribe\"".into()),
        );
        *ok = false;
    }
    Group {
        acquisition,
        period,
        sampling_interval,
        queue_size,
        deadband,
    }
}

/// Reads the keys of one `[[sources]]` table of kind `opcua`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<OpcUaSettings> {
    let mut ok = true;
    let url = table.required_str("url").and_then(|url| match check_url(url) {
        Ok(()) => Some(url.trim_end_matches('/').to_owned()),
        Err((message, hint)) => {
            table.error("url", message, Some(hint));
            None
        }
    });
    let policies = "Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss, or \"None\" for no security";
    let policy = match table.optional_str("security_policy") {
        None | Some("auto") => None,
        Some(p) => match Policy::parse(p) {
            Some(policy) => Some(policy),
            None => {
                let deprecated = ["basic128rsa15", "basic256"]
                    .contains(&p.to_ascii_lowercase().replace(['_', '-'], "").as_str());
                table.error(
                    "security_policy",
                    if deprecated {
                        format!("security policy `{p}` is deprecated (SHA-1) and not supported")
                    } else {
                        format!("unknown security policy `{p}`")
                    },
                    Some(format!(
                        "one of: {policies}; leave it out to pick the strongest the server offers"
                    )),
                );
                ok = false;
                None
            }
        },
    };
    let mode = match table.optional_str("security_mode") {
        None | Some("auto") => None,
        Some(m) => match Mode::parse(m) {
            Some(mode) => Some(mode),
            None => {
                table.error(
                    "security_mode",
                    format!("unknown security mode `{m}`"),
                    Some(
                        "\"sign\", \"sign-and-encrypt\", or \"none\" (with security_policy = \"None\")"
                            .into(),
                    ),
                );
                ok = false;
                None
            }
        },
    };
    match (policy, mode) {
        (Some(Policy::None), Some(Mode::Sign | Mode::SignAndEncrypt)) => {
            table.error(
                "security_mode",
                "security_policy = \"None\" cannot sign or encrypt",
                Some("choose a policy such as Basic256Sha256, or security_mode = \"none\"".into()),
            );
            ok = false;
        }
        (p, Some(Mode::None)) if p != Some(Policy::None) => {
            table.error(
                "security_mode",
                "security_mode = \"none\" needs security_policy = \"None\", written explicitly",
                Some(
                    "unsecured connections are never chosen by default; add security_policy = \"None\""
                        .into(),
                ),
            );
            ok = false;
        }
        _ => {}
    }
    let security = Security {
        policy,
        mode: match (policy, mode) {
            (Some(Policy::None), None) => Some(Mode::None),
            (_, m) => m,
        },
    };

    let username = table.optional_str("username");
    let password = table.optional_secret("password");
    let user_certificate = table.optional_str("user_certificate");
    let user_key = table.optional_secret("user_private_key");
    let identity = match (username, password, user_certificate, user_key) {
        (None, None, None, None) => Identity::Anonymous,
        (Some(user), Some(password), None, None) if !user.is_empty() => Identity::UserName {
            user: user.to_owned(),
            password,
        },
        (None, None, Some(cert), Some(key)) => Identity::Certificate {
            certificate: PathBuf::from(cert),
            private_key: key,
        },
        (Some(_), None, _, _) => {
            table.error(
                "username",
                "a username needs a password",
                Some("add password = \"env:OPCUA_PASSWORD\" (a reference, never the password itself)".into()),
            );
            ok = false;
            Identity::Anonymous
        }
        (None, Some(_), _, _) => {
            table.error("password", "a password needs a username", None);
            ok = false;
            Identity::Anonymous
        }
        (None, None, Some(_), None) | (None, None, None, Some(_)) => {
            table.error(
                "user_certificate",
                "an X.509 user needs both user_certificate (a path) and user_private_key (a secret reference)",
                Some("e.g. user_certificate = \"certs/operator.der\", user_private_key = \"file:certs/operator.pem\"".into()),
            );
            ok = false;
            Identity::Anonymous
        }
        _ => {
            table.error(
                "username",
                "choose one user identity: username and password, or user_certificate and user_private_key",
                None,
            );
            ok = false;
            Identity::Anonymous
        }
    };
    let pki_dir = table.optional_str("pki_dir").map(PathBuf::from);
    let verify_server_certificate = table.optional_bool("verify_server_certificate").unwrap_or(true);
    let writes = table.optional_bool("writes").unwrap_or(false);
    let mut duration = |table: &mut Table<'_>, key: &str, default: Duration, min: Duration, max: Duration| {
        let d = table.optional_duration(key).unwrap_or(default);
        if d < min || d > max {
            table.error(key, format!("`{key}` must be between {min:?} and {max:?}"), None);
            ok = false;
        }
        d
    };
    let request_timeout = duration(
        table,
        "request_timeout",
        Duration::from_secs(10),
        Duration::from_millis(100),
        Duration::from_secs(600),
    );
    let session_timeout = duration(
        table,
        "session_timeout",
        Duration::from_secs(60),
        Duration::from_secs(10),
        Duration::from_secs(3600),
    );
    let keep_alive = duration(
        table,
        "keep_alive",
        Duration::from_secs(5),
        Duration::from_millis(500),
        Duration::from_secs(600),
    );
    let reconnect_max = duration(
        table,
        "reconnect_max",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(600),
    );
    let default_group = parse_group(table, None, &mut ok);
    let mut groups = BTreeMap::new();
    if let Some(mut section) = table.optional_table("groups") {
        for (key, item) in section.take_remaining() {
            let valid = !key.name.is_empty()
                && key
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid {
                key.error(
                    format!("invalid group name `{}`", key.name),
                    Some("lower-case letters, digits, `_` and `-`".into()),
                );
                ok = false;
                continue;
            }
            let Some(mut group) = item.as_table() else {
                item.error(
                    format!("expected a table, found {}", item.type_name()),
                    Some(format!("[sources.groups.{}] period = \"100ms\"", key.name)),
                );
                ok = false;
                continue;
            };
            let parsed = parse_group(&mut group, Some(&default_group), &mut ok);
            group.finish();
            groups.insert(key.name.to_owned(), parsed);
        }
        section.finish();
    }
    let mut limit = |table: &mut Table<'_>, key: &str| -> u32 {
        match table.optional_u64(key) {
            None => 0,
            Some(v @ 1..=1_000_000) => v as u32,
            Some(v) => {
                table.error(key, format!("`{key}` = {v} is outside 1..=1000000"), None);
                ok = false;
                0
            }
        }
    };
    let limits = LimitOverrides {
        items_per_call: limit(table, "max_items_per_call"),
        nodes_per_read: limit(table, "max_nodes_per_read"),
        items_per_subscription: limit(table, "max_items_per_subscription"),
        subscriptions: limit(table, "max_subscriptions"),
    };
    let url = url?;
    ok.then_some(OpcUaSettings {
        url,
        security,
        identity,
        pki_dir,
        verify_server_certificate,
        request_timeout,
        session_timeout,
        keep_alive,
        reconnect_max,
        default_group,
        groups,
        limits,
        writes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> (Option<OpcUaSettings>, Vec<String>) {
        let (result, diagnostics) =
            backplane_config::reader::with_table(text, Path::new("t.toml"), |mut t| {
                let s = parse_settings(&mut t);
                t.finish();
                s
            });
        (
            result.flatten(),
            diagnostics
                .iter()
                .map(|d| format!("{} {} {}", d.key, d.message, d.hint.clone().unwrap_or_default()))
                .collect(),
        )
    }

    #[test]
    fn minimal_source_is_secure_anonymous_and_subscribed() {
        let (s, errors) = parse("url = \"opc.tcp://plc:4840\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(
            s.security,
            Security {
                policy: None,
                mode: None
            }
        );
        assert_eq!(s.identity, Identity::Anonymous);
        assert_eq!(s.default_group.acquisition, Acquisition::Subscribe);
        assert_eq!(s.default_group.period, Duration::from_secs(1));
        assert_eq!((s.default_group.queue_size, s.default_group.deadband), (1, None));
        assert!(!s.writes, "nothing is written unless the source says so");
        assert!(s.verify_server_certificate);
    }

    #[test]
    fn policy_none_must_be_written_out() {
        let (_, errors) = parse("url = \"opc.tcp://plc:4840\"\nsecurity_mode = \"none\"\n");
        assert!(
            errors[0].contains("needs security_policy = \"None\""),
            "{errors:?}"
        );
        let (s, errors) = parse("url = \"opc.tcp://plc:4840\"\nsecurity_policy = \"None\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            s.unwrap().security,
            Security {
                policy: Some(Policy::None),
                mode: Some(Mode::None)
            }
        );
        let (_, errors) =
            parse("url = \"opc.tcp://plc:4840\"\nsecurity_policy = \"None\"\nsecurity_mode = \"sign\"\n");
        assert!(errors[0].contains("cannot sign"), "{errors:?}");
    }

    #[test]
    fn policies_and_modes_accept_their_common_spellings() {
        for (text, policy) in [
            ("Basic256Sha256", Policy::Basic256Sha256),
            ("Aes128_Sha256_RsaOaep", Policy::Aes128Sha256RsaOaep),
            ("Aes256-Sha256-RsaPss", Policy::Aes256Sha256RsaPss),
            (
                "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
                Policy::Basic256Sha256,
            ),
        ] {
            assert_eq!(Policy::parse(text), Some(policy), "{text}");
        }
        assert_eq!(Mode::parse("SignAndEncrypt"), Some(Mode::SignAndEncrypt));
        assert_eq!(Mode::parse("sign-and-encrypt"), Some(Mode::SignAndEncrypt));
        let (_, errors) = parse("url = \"opc.tcp://plc:4840\"\nsecurity_policy = \"Basic128Rsa15\"\n");
        assert!(errors[0].contains("deprecated"), "{errors:?}");
    }

    #[test]
    fn users_are_secrets_by_reference() {
        let (s, errors) =
            parse("url = \"opc.tcp://plc:4840\"\nusername = \"operator\"\npassword = \"env:OPCUA_PW\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(s.unwrap().identity, Identity::UserName { user, .. } if user == "operator"));
        let (_, errors) =
            parse("url = \"opc.tcp://plc:4840\"\nusername = \"operator\"\npassword = \"hunter2\"\n");
        assert!(errors.iter().any(|e| e.contains("reference")), "{errors:?}");
        let (_, errors) = parse("url = \"opc.tcp://plc:4840\"\nusername = \"operator\"\n");
        assert!(errors[0].contains("needs a password"), "{errors:?}");
        let (_, errors) = parse("url = \"opc.tcp://plc:4840\"\nuser_certificate = \"u.der\"\n");
        assert!(errors[0].contains("both"), "{errors:?}");
    }

    #[test]
    fn groups_inherit_the_source_defaults() {
        let (s, errors) = parse(
            "url = \"opc.tcp://plc:4840\"\nperiod = \"500ms\"\nqueue_size = 5\n\
             [groups.fast]\nperiod = \"100ms\"\ndeadband = { absolute = 0.5 }\n\
             [groups.slow]\nmode = \"poll\"\nperiod = \"10s\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        let fast = &s.groups["fast"];
        assert_eq!(
            (fast.period, fast.queue_size, fast.deadband),
            (Duration::from_millis(100), 5, Some(Deadband::Absolute(0.5)))
        );
        assert_eq!(s.groups["slow"].acquisition, Acquisition::Poll);
        let check = |a: &str| s.check(&Address::parse(a).unwrap()).map_err(|e| e.message);
        assert!(check("group=fast;ns=2;s=X").is_ok());
        assert!(
            check("group=nope;ns=2;s=X")
                .unwrap_err()
                .contains("no group `nope`")
        );
    }

    #[test]
    fn wrong_keys_and_values_are_reported_with_hints() {
        let (s, errors) = parse(
            "url = \"http://plc\"\nsecurity_policy = \"Basic512\"\nmode = \"push\"\nqueue_size = 0\n\
             deadband = { absolute = 1, percent = 2 }\nmax_items_per_call = 0\nkeep_alive = \"1ms\"\n",
        );
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "only opc.tcp://",
            "unknown security policy `Basic512`",
            "unknown mode `push`",
            "queue_size = 0",
            "either { absolute",
            "max_items_per_call` = 0",
            "keep_alive",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        let (_, errors) = parse("url = \"opc.tcp://h:4840\"\nmode = \"poll\"\nqueue_size = 3\n");
        assert!(errors[0].contains("applies to subscriptions"), "{errors:?}");
        assert!(check_url("opc.tcp://h:0").is_err());
        assert!(check_url("opc.tcp://[::1]:4840/ua").is_ok());
        assert!(check_url("opc.tcp://:4840").is_err());
    }
}
