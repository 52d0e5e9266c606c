//! Default MQTT client ids: derived from the gateway's name and the component, so they stay
//! the same across restarts (a persistent session is found again) and differ between
//! components and gateways (the broker keeps one connection per client id and drops the
//! older one when a second connects).
//!
//! `{readable}-{hash}`: `readable` is `{gateway}-{component}` cut to 16 bytes of
//! `[0-9A-Za-z-]`, `hash` is 6 hex digits of FNV-1a (64-bit) over the gateway name, the
//! role (`source` or `sink`) and the component name. At most 23 bytes, the length every
//! MQTT 3.1.1 broker must accept. The hash tells apart what the cut or the role would
//! merge (a source and a sink may share a name). Changing this format changes every
//! default id and so drops every persistent session: the test below pins it.

use backplane_model::fnv::Fnv1a;

/// Whether the component is a source or a sink (their names are unique per role only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Source,
    Sink,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Component::Source => "source",
            Component::Sink => "sink",
        }
    }
}

/// Longest readable part: 16 + `-` + 6 hex digits = 23 bytes.
const READABLE_MAX: usize = 16;

/// The client id a component uses when `client_id` is not configured.
pub fn default_client_id(gateway: &str, role: Component, name: &str) -> String {
    let mut readable = String::with_capacity(READABLE_MAX);
    for c in format!("{gateway}-{name}").chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        // No leading or doubled separators.
        if c == '-' && (readable.is_empty() || readable.ends_with('-')) {
            continue;
        }
        if readable.len() == READABLE_MAX {
            break;
        }
        readable.push(c);
    }
    while readable.ends_with('-') {
        readable.pop();
    }
    // Specified once and for all (std's hasher is not): ids survive Rust upgrades.
    let mut hash = Fnv1a::default();
    for part in [gateway, role.as_str(), name] {
        hash.write(part.as_bytes());
        // A separator no name contains, so ("a-b", "c") and ("a", "b-c") differ.
        hash.write(&[0]);
    }
    let digest = hash.finish() & 0xff_ffff;
    if readable.is_empty() {
        format!("bp-{digest:06x}")
    } else {
        format!("{readable}-{digest:06x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_pinned_so_persistent_sessions_survive_upgrades() {
        assert_eq!(
            default_client_id("plant-a", Component::Source, "silo"),
            "plant-a-silo-927be2"
        );
        assert_eq!(
            default_client_id("plant-a-edge", Component::Source, "silo-sensors"),
            "plant-a-edge-sil-708cea"
        );
    }

    #[test]
    fn default_ids_fit_mqtt_3_1_1_and_use_only_safe_characters() {
        for (gateway, name) in [
            ("a", "b"),
            ("a-very-long-gateway-name-indeed", "and-a-long-source-name"),
            ("gw", "name.with/odd#chars+and ünïcode"),
            ("", ""),
            ("---", "---"),
        ] {
            for role in [Component::Source, Component::Sink] {
                let id = default_client_id(gateway, role, name);
                assert!((1..=23).contains(&id.len()), "{id}");
                assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{id}");
                assert!(!id.contains("--"), "{id}");
                assert_eq!(id, default_client_id(gateway, role, name), "stable");
            }
        }
    }

    #[test]
    fn ids_differ_by_gateway_role_and_component_even_where_the_readable_part_is_equal() {
        let ids = [
            default_client_id("a-b", Component::Source, "c"),
            default_client_id("a", Component::Source, "b-c"),
            default_client_id("a-b", Component::Sink, "c"),
            default_client_id("plant-a-long-gateway", Component::Source, "one"),
            default_client_id("plant-a-long-gateway", Component::Source, "two"),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
