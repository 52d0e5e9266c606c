//! An authenticated identity: what every change is attributed to.

use std::fmt;

use serde::Serialize;

use crate::Role;

/// How an identity was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// No credentials: only where the configuration allows it (no users, loopback).
    Anonymous,
    /// A machine token (`Authorization: Bearer`).
    Token,
    /// A user's password (login, or HTTP Basic).
    Password,
    /// A UI session cookie made at login.
    Session,
    /// A TLS client certificate.
    ClientCertificate,
    /// A configured MQTT or Sparkplug connection: the identity its sink is configured with.
    Connection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// A user name, token name, certificate subject or sink name.
    pub name: String,
    pub role: Role,
    pub method: AuthMethod,
}

impl Identity {
    pub fn new(name: impl Into<String>, role: Role, method: AuthMethod) -> Identity {
        Identity {
            name: name.into(),
            role,
            method,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}
