//! The MQTT command topic's messages: what an MES or ERP publishes to drive production, and
//! what Backplane replies. No I/O: [`parse`] turns a message into a [`Request`] (or a
//! [`Rejected`] that names what is wrong), and [`Reply`] is the JSON published on the reply
//! topic. The sink `mqtt` ([`crate::uns`]) does the subscribing, runs the commands in order
//! and publishes the replies (`docs/connectors/mqtt.md`, "Commands").
//!
//! A message is one command of the production vocabulary ([`Command`], the same JSON the
//! HTTP API takes) with two optional envelope fields, removed before the command is read.
//! `by` is only a claim: anyone who can publish can write any name, so commands run as the
//! sink's own identity and the claim is kept beside it (reply, audit trail).
//!
//! ```json
//! {"request_id": "mes-4711", "by": "mes", "command": "start_work_order", "id": "WO-1001"}
//! ```

use backplane_production::{Command, CommandError, ErrorKind, FieldError, Refusal};
use serde::Serialize;
use serde_json::{Map, Value};

/// The largest message read as a command; larger ones are refused unread.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest `request_id` and `by`, in characters.
pub const MAX_ENVELOPE_CHARS: usize = 256;

/// A command read from a message, with its envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in the reply, so the sender can match it to its request.
    pub request_id: Option<String>,
    /// Who the message says sent it: unverified, kept as a note, never acted on.
    pub claimed_by: Option<String>,
    pub command: Command,
    /// The command as read (envelope removed), for the audit trail.
    pub json: Value,
}

/// A message that is not a command that can be run. Nothing was changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// The message's `request_id`, when it had a valid one.
    pub request_id: Option<String>,
    /// The message's `command` field, when it was text.
    pub command: Option<String>,
    pub refusal: Refusal,
}

impl Rejected {
    fn new(field: &str, message: impl Into<String>) -> Rejected {
        Rejected {
            request_id: None,
            command: None,
            refusal: Refusal::Command(CommandError::invalid(field, message)),
        }
    }

    /// The reply to publish.
    pub fn reply(&self) -> Reply<'_> {
        Reply::refused(self.request_id.as_deref(), self.command.as_deref(), &self.refusal)
    }
}

/// Reads one message of the command topic.
///
/// Refused, each naming the problem: messages over [`MAX_MESSAGE_BYTES`], anything but a
/// JSON object, a `request_id` or `by` that is not a short single-line text, a missing or
/// unknown `command`, and unknown, missing or mistyped fields of the command.
pub fn parse(payload: &[u8]) -> Result<Request, Rejected> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(Rejected::new(
            "body",
            format!(
                "the message is {} bytes; a command is at most {MAX_MESSAGE_BYTES} bytes",
                payload.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Rejected::new("body", format!("the message is not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(Rejected::new(
            "body",
            format!(
                "a command is a JSON object with a `command` field, found {}",
                json_type(&value)
            ),
        ));
    };
    let command_name = match object.get("command") {
        Some(Value::String(name)) => Some(name.clone()),
        _ => None,
    };
    let rejected = |field: &str, message: String| Rejected {
        request_id: None,
        command: command_name.clone(),
        refusal: Refusal::Command(CommandError::invalid(field, message)),
    };
    let request_id = match object.remove("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => {
            Some(envelope_text("request_id", id).map_err(|e| rejected("request_id", e.to_string()))?)
        }
        Some(other) => {
            return Err(rejected(
                "request_id",
                format!("`request_id` must be text, found {}", json_type(&other)),
            ));
        }
    };
    let rejected = |field: &str, message: String| Rejected {
        request_id: request_id.clone(),
        command: command_name.clone(),
        refusal: Refusal::Command(CommandError::invalid(field, message)),
    };
    let claimed_by = match object.remove("by") {
        None | Some(Value::Null) => None,
        Some(Value::String(by)) => Some(envelope_text("by", by).map_err(|e| rejected("by", e.to_string()))?),
        Some(other) => {
            return Err(rejected(
                "by",
                format!("`by` must be text, found {}", json_type(&other)),
            ));
        }
    };
    match object.get("command") {
        Some(Value::String(_)) => {}
        None => {
            return Err(rejected(
                "command",
                "the message has no `command` field: name the command, e.g. \"command\": \"start_work_order\""
                    .to_owned(),
            ));
        }
        Some(other) => {
            return Err(rejected(
                "command",
                format!("`command` must be text, found {}", json_type(other)),
            ));
        }
    }
    let json = Value::Object(object.clone());
    match serde_json::from_value::<Command>(Value::Object(object)) {
        Ok(command) => Ok(Request {
            request_id,
            claimed_by,
            command,
            json,
        }),
        Err(e) => {
            let text = e.to_string();
            let field = field_of(&text, command_name.as_deref());
            Err(rejected(&field, format!("not a valid command: {text}")))
        }
    }
}

/// Why a `request_id` or `by` is refused; each names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum EnvelopeError {
    /// Empty or only whitespace.
    #[error("`{0}` is empty")]
    Empty(&'static str),
    /// Line breaks, tabs or other control characters.
    #[error("`{0}` contains control characters (line breaks, tabs)")]
    ControlCharacters(&'static str),
    /// Over [`MAX_ENVELOPE_CHARS`] characters.
    #[error("`{0}` is longer than {MAX_ENVELOPE_CHARS} characters")]
    TooLong(&'static str),
}

/// The request id or `by` as given, if it is a non-empty single line of at most
/// [`MAX_ENVELOPE_CHARS`] characters.
fn envelope_text(field: &'static str, text: String) -> Result<String, EnvelopeError> {
    if text.trim().is_empty() {
        Err(EnvelopeError::Empty(field))
    } else if text.chars().any(char::is_control) {
        Err(EnvelopeError::ControlCharacters(field))
    } else if text.chars().count() > MAX_ENVELOPE_CHARS {
        Err(EnvelopeError::TooLong(field))
    } else {
        Ok(text)
    }
}

/// The field a serde error is about: `unknown field `colour`` → `colour`; an unknown
/// variant that is the command's name → `command`; otherwise `body`.
fn field_of(error: &str, command: Option<&str>) -> String {
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = error.split(prefix).nth(1)
            && let Some(name) = rest.split('`').next()
            && !name.is_empty()
        {
            return name.to_owned();
        }
    }
    if let Some(rest) = error.split("unknown variant `").nth(1)
        && let Some(name) = rest.split('`').next()
        && Some(name) == command
    {
        return "command".to_owned();
    }
    "body".to_owned()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What is published on the reply topic for every message of the command topic.
///
/// ```json
/// {"request_id": "mes-4711", "command": "start_work_order", "ok": true, "result": {...}}
/// {"request_id": "mes-4712", "command": "start_work_order", "ok": false,
///  "error": {"kind": "invalid", "field": "id", "message": "..."}}
/// ```
#[derive(Debug, Serialize)]
pub struct Reply<'a> {
    /// The request's `request_id`; `null` when it had none.
    pub request_id: Option<&'a str>,
    /// The command's name, when the message named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<&'a str>,
    pub ok: bool,
    /// The identity the command ran as: the sink's, never the message's `by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'a str>,
    /// The message's `by`, as claimed (unverified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<&'a str>,
    /// What the command created or changed (the work order, the lot, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError<'a>>,
    /// An operator entry (`submit_form`) with bad fields: every one of them.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    pub errors: &'a [FieldError],
}

/// Why a command was not carried out.
#[derive(Debug, Serialize)]
pub struct ReplyError<'a> {
    /// `invalid`, `not_found`, `conflict` (as the HTTP API's 400, 404, 409), or
    /// `unavailable` (the gateway is stopping or too busy; nothing was done).
    pub kind: &'static str,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    pub message: String,
}

impl<'a> Reply<'a> {
    pub fn ok(request_id: Option<&'a str>, command: &'a str, result: &'a Value) -> Reply<'a> {
        Reply {
            request_id,
            command: Some(command),
            ok: true,
            by: None,
            claimed_by: None,
            result: Some(result),
            error: None,
            errors: &[],
        }
    }

    pub fn refused(request_id: Option<&'a str>, command: Option<&'a str>, refusal: &'a Refusal) -> Reply<'a> {
        let (field, errors) = match refusal {
            Refusal::Command(e) => (e.field.as_deref(), &[][..]),
            Refusal::Fields { errors } => (None, errors.as_slice()),
        };
        Reply {
            request_id,
            command,
            ok: false,
            by: None,
            claimed_by: None,
            result: None,
            error: Some(ReplyError {
                kind: kind_name(refusal.kind()),
                field,
                message: match refusal {
                    Refusal::Command(e) => e.message.clone(),
                    Refusal::Fields { .. } => format!("the entry was not recorded: {}", refusal.message()),
                },
            }),
            errors,
        }
    }

    /// Not run, for a reason that is not the command's fault (shutdown, too many waiting).
    pub fn unavailable(request_id: Option<&'a str>, command: Option<&'a str>, message: String) -> Reply<'a> {
        Reply {
            request_id,
            command,
            ok: false,
            by: None,
            claimed_by: None,
            result: None,
            error: Some(ReplyError {
                kind: "unavailable",
                field: None,
                message,
            }),
            errors: &[],
        }
    }

    /// Names who the command ran as, and who the message claimed to be.
    pub fn attributed(mut self, by: &'a str, claimed_by: Option<&'a str>) -> Reply<'a> {
        self.by = Some(by);
        self.claimed_by = claimed_by;
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these plain types cannot fail; an empty payload would say so anyway.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Invalid => "invalid",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
    }
}

/// The `request_id` and `command` of a message, as far as they can be read, for a reply
/// to a message that is refused without being parsed (e.g. too many waiting).
pub fn envelope_of(payload: &[u8]) -> (Option<String>, Option<String>) {
    if payload.len() > MAX_MESSAGE_BYTES {
        return (None, None);
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(payload) else {
        return (None, None);
    };
    let text = |object: &Map<String, Value>, key: &str| match object.get(key) {
        Some(Value::String(s)) if s.chars().count() <= MAX_ENVELOPE_CHARS => Some(s.clone()),
        _ => None,
    };
    (text(&object, "request_id"), text(&object, "command"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn refused(payload: &[u8]) -> (Rejected, Value) {
        let rejected = parse(payload).unwrap_err();
        let reply: Value = serde_json::from_slice(&rejected.reply().to_bytes()).unwrap();
        assert_eq!(reply["ok"], false);
        (rejected, reply)
    }

    #[test]
    fn the_envelope_is_stripped_before_the_command_is_read() {
        let r = parse(br#"{"request_id": "r-1", "by": "mes", "command": "start_work_order", "id": "WO-1"}"#)
            .unwrap();
        assert_eq!(r.request_id.as_deref(), Some("r-1"));
        assert_eq!(r.claimed_by.as_deref(), Some("mes"));
        assert_eq!(r.command, Command::StartWorkOrder { id: "WO-1".into() });
        assert_eq!(r.json, json!({"command": "start_work_order", "id": "WO-1"}));

        let r = parse(br#"{"command": "create_work_order", "id": "WO-2", "product": "milk-1l", "asset": "packaging/line-1", "planned_quantity": 1000}"#)
            .unwrap();
        assert_eq!(r.request_id, None);
        assert_eq!(r.claimed_by, None);
        assert_eq!(r.command.name(), "create_work_order");

        // `null` is the same as absent.
        let r =
            parse(br#"{"request_id": null, "by": null, "command": "sign_out", "operator": "jo"}"#).unwrap();
        assert_eq!((r.request_id, r.claimed_by), (None, None));
    }

    #[test]
    fn a_bad_envelope_is_refused_by_field() {
        let (e, reply) = refused(br#"{"request_id": 42, "command": "start_work_order", "id": "WO-1"}"#);
        assert_eq!(reply["error"]["field"], "request_id");
        assert_eq!(reply["request_id"], Value::Null);
        assert_eq!(reply["command"], "start_work_order");
        assert!(
            e.refusal.message().contains("must be text"),
            "{}",
            e.refusal.message()
        );

        let (_, reply) =
            refused(br#"{"request_id": "r-9", "by": "", "command": "start_work_order", "id": "WO-1"}"#);
        assert_eq!(reply["error"]["field"], "by");
        assert_eq!(
            reply["request_id"], "r-9",
            "a valid request id is echoed even when refused"
        );

        let (_, reply) = refused(br#"{"by": "line\nbreak", "command": "start_work_order", "id": "WO-1"}"#);
        assert_eq!(reply["error"]["field"], "by");
        let long = format!(
            r#"{{"request_id": "{}", "command": "start_work_order", "id": "WO-1"}}"#,
            "x".repeat(MAX_ENVELOPE_CHARS + 1)
        );
        let (_, reply) = refused(long.as_bytes());
        assert_eq!(reply["error"]["field"], "request_id");
    }

    #[test]
    fn malformed_json_and_non_objects_are_refused() {
        for payload in [&b"not json"[..], b"{\"command\": ", b"\xff\xfe", b""] {
            let (e, reply) = refused(payload);
            assert_eq!(reply["error"]["kind"], "invalid");
            assert_eq!(reply["error"]["field"], "body");
            assert!(
                e.refusal.message().contains("not JSON"),
                "{}",
                e.refusal.message()
            );
        }
        let (e, _) = refused(br#"["start_work_order"]"#);
        assert!(
            e.refusal.message().contains("found an array"),
            "{}",
            e.refusal.message()
        );
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        refused(&deep.as_bytes()[..MAX_MESSAGE_BYTES]);
    }

    #[test]
    fn unknown_commands_and_fields_are_refused_naming_them() {
        let (e, reply) = refused(br#"{"request_id": "r", "command": "launch_rocket"}"#);
        assert_eq!(reply["error"]["field"], "command");
        assert_eq!(reply["command"], "launch_rocket");
        assert!(
            e.refusal.message().contains("launch_rocket"),
            "{}",
            e.refusal.message()
        );

        let (e, reply) = refused(br#"{"command": "start_work_order", "id": "WO-1", "colour": "red"}"#);
        assert_eq!(reply["error"]["field"], "colour");
        assert!(e.refusal.message().contains("colour"), "{}", e.refusal.message());

        let (_, reply) = refused(br#"{"command": "start_work_order"}"#);
        assert_eq!(reply["error"]["field"], "id");

        let (_, reply) = refused(br#"{"id": "WO-1"}"#);
        assert_eq!(reply["error"]["field"], "command");
        let (_, reply) = refused(br#"{"command": 7, "id": "WO-1"}"#);
        assert_eq!(reply["error"]["field"], "command");

        // An unknown value of an enum field is not an unknown command.
        let (e, reply) =
            refused(br#"{"command": "set_work_order_status", "id": "WO-1", "status": "dancing"}"#);
        assert_eq!(reply["error"]["field"], "body");
        assert!(e.refusal.message().contains("dancing"), "{}", e.refusal.message());
    }

    #[test]
    fn oversized_messages_are_refused_unread() {
        let mut big = br#"{"command": "sign_out", "operator": ""#.to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_MESSAGE_BYTES));
        big.extend(br#""}"#);
        let (e, reply) = refused(&big);
        assert_eq!(reply["error"]["field"], "body");
        assert!(
            e.refusal.message().contains("at most 65536 bytes"),
            "{}",
            e.refusal.message()
        );
        assert_eq!(envelope_of(&big), (None, None));
    }

    #[test]
    fn replies_say_ok_with_the_result_or_why_not() {
        let result = json!({"id": "WO-1", "status": "running"});
        let ok: Value =
            serde_json::from_slice(&Reply::ok(Some("r-1"), "start_work_order", &result).to_bytes()).unwrap();
        assert_eq!(
            ok,
            json!({"request_id": "r-1", "command": "start_work_order", "ok": true, "result": {"id": "WO-1", "status": "running"}})
        );

        let refusal = Refusal::Command(CommandError::conflict("id", "work order `WO-1` already exists"));
        let no: Value =
            serde_json::from_slice(&Reply::refused(None, Some("create_work_order"), &refusal).to_bytes())
                .unwrap();
        assert_eq!(
            no,
            json!({"request_id": null, "command": "create_work_order", "ok": false,
                   "error": {"kind": "conflict", "field": "id", "message": "work order `WO-1` already exists"}})
        );

        let refusal = Refusal::Fields {
            errors: vec![
                FieldError::new("fat", "`fat` is required: a number in %"),
                FieldError::new("colour", "unknown field `colour`"),
            ],
        };
        let no: Value =
            serde_json::from_slice(&Reply::refused(Some("e-1"), Some("submit_form"), &refusal).to_bytes())
                .unwrap();
        assert_eq!(no["error"]["kind"], "invalid");
        assert!(no["error"].get("field").is_none());
        assert!(no["error"]["message"].as_str().unwrap().contains("fat"));
        assert_eq!(
            no["errors"],
            json!([{"field": "fat", "message": "`fat` is required: a number in %"},
                   {"field": "colour", "message": "unknown field `colour`"}])
        );

        let busy: Value = serde_json::from_slice(
            &Reply::unavailable(Some("r"), None, "the engine is shutting down".into()).to_bytes(),
        )
        .unwrap();
        assert_eq!(busy["error"]["kind"], "unavailable");
        assert!(busy.get("command").is_none());
    }

    #[test]
    fn the_envelope_of_an_unparsed_message_is_read_when_possible() {
        assert_eq!(
            envelope_of(br#"{"request_id": "r", "command": "start_work_order", "id": 1}"#),
            (Some("r".into()), Some("start_work_order".into()))
        );
        assert_eq!(envelope_of(b"nope"), (None, None));
    }
}
