//! Backplane's HTTP source, the `http` kind: JSON documents from systems that speak
//! HTTP — polled from an endpoint with conditional requests, or POSTed by legacy systems to
//! the gateway's API (`POST /api/v1/webhooks/{name}`). Fields are selected with RFC 9535
//! JSONPaths. The user's guide is docs/connectors/http.md.
//!
//! Layout:
//! - [`config`]: the source's keys ([`HttpSettings`]): mode, URL, period, timeout, body
//!   limit, headers, auth by secret reference, webhook fields.
//! - [`select`]: document → readings, without I/O; bad fields named by path.
//! - [`schema`]: a webhook route's field schema, every bad field named.
//! - [`poll`]: one conditional GET (ETag, Last-Modified) with a bounded streaming read;
//!   transport errors apart from bad answers.
//! - [`source`]: the running source (poll loop or webhook loop).
//! - [`kind`]: [`HttpKind`] (registered as `http`): addresses, check summary, the webhook
//!   routes offered to the API as [`backplane_connector::Inbound`] services.

pub mod config;
pub mod kind;
pub mod poll;
pub mod schema;
pub mod select;
pub mod source;

pub use config::HttpSettings;
pub use kind::HttpKind;
