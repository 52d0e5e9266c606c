//! The settings of the `mqtt` sink kind and how they are read from its TOML table
//! (`docs/connectors/mqtt.md` lists the keys). No I/O.

use std::time::Duration;

use backplane_config::Table;

use crate::common::{parse_inflight, parse_qos};
use crate::settings::{ConnectionSettings, Qos};
use crate::topic::validate_topic;

/// Settings of one `mqtt` sink.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSinkSettings {
    pub connection: ConnectionSettings,
    /// Prepended to every topic (without a trailing `/`).
    pub topic_prefix: Option<String>,
    pub qos: Qos,
    /// Publish samples and instances retained, so a new subscriber sees the last values.
    pub retain: bool,
    /// Publish one message per attribute (`{asset}/{attribute}`).
    pub attributes: bool,
    /// Publish one message per asset with all its attributes (`{asset}/_instance`).
    pub instances: bool,
    /// Publish events (`{asset}/_events`, not retained).
    pub events: bool,
    /// `None`: `[{prefix}/]backplane/{gateway}/status`.
    pub status_topic: Option<String>,
    /// Batching: collect samples this long and publish only the latest per tag. Zero
    /// publishes every sample as it comes.
    pub linger: Duration,
    /// Most publishes waiting for the broker's acknowledgement at once.
    pub max_inflight: u16,
    /// The production command topic (`commands`); off unless configured.
    pub commands: CommandTopic,
    /// Who commands from the command topic run as (`commands_identity`); `mqtt:<sink>`
    /// when absent. The messages' own `by` is only a claim.
    pub commands_identity: Option<String>,
}

/// Whether the sink takes production commands, and on which topic (`commands`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CommandTopic {
    /// `commands = false` or absent: the sink subscribes to nothing.
    #[default]
    Off,
    /// `commands = true` (or a table without `topic`): `[{prefix}/]backplane/{gateway}/commands`.
    Default,
    /// `commands = { topic = "..." }`: this topic, as written (no prefix).
    Topic(String),
}

impl CommandTopic {
    /// Reads `commands`: `true`, `false`, or `{ topic = "..." }`.
    fn parse(table: &mut Table<'_>) -> CommandTopic {
        let Some(item) = table.optional_item("commands") else {
            return CommandTopic::Off;
        };
        let hint = Some("write `commands = true`, or `commands = { topic = \"mes/line-1/commands\" }` for a topic of your own".to_owned());
        if let Some(on) = item.as_bool() {
            return if on {
                CommandTopic::Default
            } else {
                CommandTopic::Off
            };
        }
        let Some(mut t) = item.as_table() else {
            let found = item.type_name();
            let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            item.error(
                format!("`commands` must be true, false or a table with a `topic`, found {article} {found}"),
                hint,
            );
            return CommandTopic::Off;
        };
        let topic = t.optional_str("topic");
        let checked = match topic {
            None => CommandTopic::Default,
            Some(topic) => match validate_topic(topic) {
                Err(e) => {
                    t.error("topic", format!("invalid command `topic`: {e}"), hint);
                    CommandTopic::Off
                }
                Ok(()) if topic.starts_with('$') => {
                    t.error(
                        "topic",
                        format!("invalid command `topic`: `{topic}` starts with `$`, which is reserved for the broker"),
                        hint,
                    );
                    CommandTopic::Off
                }
                Ok(()) => CommandTopic::Topic(topic.to_owned()),
            },
        };
        t.finish();
        checked
    }
}

/// The kind registered as `mqtt` (sink).
#[derive(Debug)]
pub struct MqttSinkKind;

impl backplane_connector::Kind for MqttSinkKind {
    type Settings = MqttSinkSettings;

    fn describe(&self) -> &'static str {
        "unified namespace over MQTT: JSON per attribute and per instance, retained, with a status topic"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<MqttSinkSettings> {
        let connection = ConnectionSettings::parse(table);
        let topic_prefix = table
            .optional_str("topic_prefix")
            .map(|p| p.trim_end_matches('/').to_owned());
        if let Some(p) = &topic_prefix {
            let problem = match validate_topic(p) {
                Err(e) => Some(e.to_string()),
                Ok(()) if p.starts_with('/') => Some("a prefix must not start with `/`".to_owned()),
                Ok(()) => None,
            };
            if let Some(problem) = problem {
                table.error("topic_prefix", format!("invalid `topic_prefix`: {problem}"), None);
            }
        }
        let qos = parse_qos(table, "qos", Qos::AtLeastOnce);
        let retain = table.optional_bool("retain").unwrap_or(true);
        let (attributes, instances) = match table.optional_str("payload") {
            None | Some("attribute") => (true, false),
            Some("instance") => (false, true),
            Some("both") => (true, true),
            Some(other) => {
                table.error(
                    "payload",
                    format!("unknown payload form `{other}`"),
                    Some("one of: \"attribute\", \"instance\", \"both\"".into()),
                );
                (true, false)
            }
        };
        let events = table.optional_bool("events").unwrap_or(true);
        let status_topic = table.optional_str("status_topic").map(str::to_owned);
        if let Some(t) = &status_topic
            && let Err(e) = validate_topic(t)
        {
            table.error("status_topic", format!("invalid `status_topic`: {e}"), None);
        }
        let linger = table.optional_duration("batch_linger").unwrap_or(Duration::ZERO);
        if linger > Duration::from_secs(60) {
            table.error("batch_linger", "`batch_linger` must be at most 60s", None);
        }
        let max_inflight = parse_inflight(table);
        let commands = CommandTopic::parse(table);
        let commands_identity = table.optional_str("commands_identity").map(str::to_owned);
        if let Some(identity) = &commands_identity {
            if commands == CommandTopic::Off {
                table.error(
                    "commands_identity",
                    "`commands_identity` names who commands run as, but `commands` is off",
                    Some("add `commands = true`, or remove `commands_identity`".into()),
                );
            } else if identity.trim().is_empty()
                || identity.chars().count() > 64
                || identity.chars().any(char::is_control)
            {
                table.error(
                    "commands_identity",
                    "`commands_identity` must be 1 to 64 characters on one line",
                    Some("commands_identity = \"mes-line-1\"".into()),
                );
            }
        }
        Some(MqttSinkSettings {
            connection: connection?,
            topic_prefix,
            qos,
            retain,
            attributes,
            instances,
            events,
            status_topic,
            linger,
            max_inflight,
            commands,
            commands_identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uns::Namespace;
    use crate::uns::fixture::{CONFIG, topology};

    use std::path::Path;

    fn commands_setting(line: &str) -> Result<CommandTopic, Vec<String>> {
        let mut registry = backplane_engine::builtins();
        registry.add_sink("mqtt", MqttSinkKind);
        let config = format!("{CONFIG}{line}\n");
        match backplane_config::load_str(&config, Path::new("t.toml"), &registry.catalog()) {
            Ok(plan) => Ok(plan.sinks[0]
                .settings
                .downcast_ref::<MqttSinkSettings>()
                .unwrap()
                .commands
                .clone()),
            Err(diagnostics) => Err(diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.key, d.message))
                .collect()),
        }
    }

    #[test]
    fn the_commands_key_turns_the_command_topic_on_with_the_default_or_its_own_topic() {
        assert_eq!(commands_setting(""), Ok(CommandTopic::Off));
        assert_eq!(commands_setting("commands = false"), Ok(CommandTopic::Off));
        assert_eq!(commands_setting("commands = true"), Ok(CommandTopic::Default));
        assert_eq!(commands_setting("commands = {}"), Ok(CommandTopic::Default));
        assert_eq!(
            commands_setting("commands = { topic = \"mes/line-1/commands\" }"),
            Ok(CommandTopic::Topic("mes/line-1/commands".into()))
        );
        let (topology, settings) = topology();
        let ns = Namespace::new(topology, &settings);
        assert_eq!(ns.default_commands_topic("gw"), "v1/backplane/gw/commands");
    }

    #[test]
    fn bad_commands_values_are_diagnosed_naming_the_key() {
        for (line, key, says) in [
            (
                "commands = \"yes\"",
                "sinks[0].commands",
                "must be true, false or a table",
            ),
            ("commands = 1", "sinks[0].commands", "found an integer"),
            (
                "commands = { topic = \"mes/+/commands\" }",
                "sinks[0].commands.topic",
                "wildcard",
            ),
            (
                "commands = { topic = \"\" }",
                "sinks[0].commands.topic",
                "cannot be empty",
            ),
            (
                "commands = { topic = \"$SYS/commands\" }",
                "sinks[0].commands.topic",
                "reserved",
            ),
            (
                "commands = { topc = \"a/b\" }",
                "sinks[0].commands.topc",
                "unknown key",
            ),
        ] {
            let errors = commands_setting(line).expect_err(line);
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{key}: ")) && e.contains(says)),
                "{line}: {errors:?}"
            );
        }
    }
}
