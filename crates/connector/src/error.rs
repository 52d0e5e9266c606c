//! [`ComponentError`]: why a source or sink could not start or stopped, by kind of failure.
//!
//! The kind decides what the supervisor does: a [`Permanent`](ComponentError::Permanent)
//! or [`Config`](ComponentError::Config) failure will fail the same way on every retry, so
//! the component is stopped and health says why; every other kind is retried with backoff.

use std::error::Error as StdError;

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Why a source or sink failed. Health shows the kind (`kind()`) beside the message.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The component's configuration cannot work (a bad certificate path, settings of
    /// another kind, an address the device model rejects). Not retried.
    #[error("{message}")]
    Config {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// The peer could not be reached or refused the session (DNS, TCP, TLS, login).
    /// Retried with backoff.
    #[error("{message}")]
    Connect {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// Local or network I/O failed mid-session (a socket closed, a file could not be
    /// written). Retried with backoff.
    #[error("{message}")]
    Io {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// The peer broke the protocol (malformed frames, unexpected answers). Retried.
    #[error("{message}")]
    Protocol {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// Will fail the same way on every retry for a reason other than configuration (the
    /// peer permanently refuses this client). Not retried.
    #[error("{message}")]
    Permanent {
        message: String,
        #[source]
        source: Option<Source>,
    },
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident, $with:ident => $variant:ident;)*) => {
        impl ComponentError {
            $(
                $(#[$doc])*
                pub fn $name(message: impl Into<String>) -> ComponentError {
                    ComponentError::$variant { message: message.into(), source: None }
                }

                $(#[$doc])*
                /// Keeps `source` as the error's cause.
                pub fn $with(
                    message: impl Into<String>,
                    source: impl StdError + Send + Sync + 'static,
                ) -> ComponentError {
                    ComponentError::$variant { message: message.into(), source: Some(Box::new(source)) }
                }
            )*
        }
    };
}

constructors! {
    /// A configuration that cannot work; the supervisor does not retry it.
    config, config_because => Config;
    /// The peer could not be reached or refused the session.
    connect, connect_because => Connect;
    /// I/O failed mid-session.
    io, io_because => Io;
    /// The peer broke the protocol.
    protocol, protocol_because => Protocol;
    /// Fails the same way on every retry; the supervisor does not retry it.
    permanent, permanent_because => Permanent;
}

impl ComponentError {
    /// `config`, `connect`, `io`, `protocol` or `permanent`, as health shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            ComponentError::Config { .. } => "config",
            ComponentError::Connect { .. } => "connect",
            ComponentError::Io { .. } => "io",
            ComponentError::Protocol { .. } => "protocol",
            ComponentError::Permanent { .. } => "permanent",
        }
    }

    /// Whether retrying can help: false for configuration and permanent failures.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ComponentError::Config { .. } | ComponentError::Permanent { .. }
        )
    }

    /// The message, followed by each cause in turn (`message: cause: cause`).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            let c_text = c.to_string();
            // Messages often already quote their cause; don't say it twice.
            if !text.contains(&c_text) {
                text.push_str(": ");
                text.push_str(&c_text);
            }
            cause = c.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_and_permanent_failures_are_not_retried() {
        assert!(!ComponentError::config("bad certificate path").is_retryable());
        assert!(!ComponentError::permanent("client id banned").is_retryable());
        assert!(ComponentError::connect("refused").is_retryable());
        assert!(ComponentError::io("reset").is_retryable());
        assert!(ComponentError::protocol("bad frame").is_retryable());
    }

    #[test]
    fn the_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = ComponentError::connect_because("cannot reach 127.0.0.1:502", io);
        assert_eq!(e.kind(), "connect");
        assert_eq!(e.chain(), "cannot reach 127.0.0.1:502: connection refused");
        let io = std::io::Error::other("disk full");
        let e = ComponentError::io_because("cannot write: disk full", io);
        assert_eq!(e.chain(), "cannot write: disk full");
    }
}
