//! One endpoint polled with conditional requests: `If-None-Match` with the last good
//! document's `ETag`, `If-Modified-Since` with its `Last-Modified`. Transport errors (no
//! connection, timeout) are kept apart from what the server answered ([`Answer`]): the
//! first ends the source (the supervisor marks its values bad and reconnects), the second
//! is one bad document, counted, and the next poll goes on.

use backplane_config::SecretError;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};

use crate::config::{Auth, PollSettings};

/// What the server answered.
#[derive(Debug)]
pub enum Answer {
    /// 304: the document has not changed since the last good one.
    NotModified,
    /// 2xx with a JSON document.
    Document(serde_json::Value),
    /// An answer that is no usable document.
    Bad(DocumentError),
}

/// Why an answer is no usable document; each names where.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the document is larger than max_body_bytes = {limit} (stopped reading at byte {read})")]
    TooLarge { limit: usize, read: usize },
    #[error("the document is not JSON: {message} at line {line}, column {column}")]
    Malformed {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("the server answered HTTP {status}")]
    Status { status: u16 },
}

impl DocumentError {
    /// The counter this error is counted under.
    pub fn event(&self) -> &'static str {
        match self {
            DocumentError::TooLarge { .. } => "document_too_large",
            DocumentError::Malformed { .. } => "document_malformed",
            DocumentError::Status { .. } => "http_error_status",
        }
    }
}

/// Why a request was not answered at all.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {message}")]
pub struct TransportError {
    pub url: String,
    pub message: String,
}

/// The poller of one source: client, request headers and the validators of the last good
/// document.
#[derive(Debug)]
pub struct Poller {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    max_body: usize,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Poller {
    /// Reads the credentials now (a rotated secret is read again at each restart).
    pub fn new(settings: &PollSettings, max_body: usize) -> Result<Poller, String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &settings.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(auth) = &settings.auth {
            let (name, mut value) = auth_header(auth)?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could carry the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Poller {
            client,
            url: settings.url.clone(),
            headers,
            max_body: max_body.max(1),
            etag: None,
            last_modified: None,
        })
    }

    /// Sends one conditional GET and reads the answer, at most `max_body` bytes of it.
    pub async fn poll(&mut self) -> Result<Answer, TransportError> {
        let mut request = self.client.get(self.url.clone()).headers(self.headers.clone());
        if let Some(etag) = &self.etag {
            request = request.header(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(time) = &self.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, time.clone());
        }
        let mut response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Answer::NotModified);
        }
        if !status.is_success() {
            return Ok(Answer::Bad(DocumentError::Status {
                status: status.as_u16(),
            }));
        }
        let validators = (
            response.headers().get(header::ETAG).cloned(),
            response.headers().get(header::LAST_MODIFIED).cloned(),
        );
        let limit = self.max_body;
        if let Some(length) = response.content_length().filter(|n| *n > limit as u64) {
            return Ok(Answer::Bad(DocumentError::TooLarge {
                limit,
                read: length.min(limit as u64 + 1) as usize,
            }));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > limit {
                // Dropping the response closes the connection: the rest is never read.
                return Ok(Answer::Bad(DocumentError::TooLarge {
                    limit,
                    read: body.len() + chunk.len(),
                }));
            }
            body.extend_from_slice(&chunk);
        }
        match serde_json::from_slice(&body) {
            Ok(document) => {
                // Only a good document's validators: after a bad one, ask for it again.
                (self.etag, self.last_modified) = validators;
                Ok(Answer::Document(document))
            }
            Err(e) => {
                let text = e.to_string();
                let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
                Ok(Answer::Bad(DocumentError::Malformed {
                    message: message.to_owned(),
                    line: e.line(),
                    column: e.column(),
                }))
            }
        }
    }

    fn transport(&self, e: &reqwest::Error) -> TransportError {
        // reqwest's Display is terse; its sources say why (refused, timed out, TLS).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        TransportError {
            url: self.url.to_string(),
            message,
        }
    }
}

/// The header carrying the credentials, with the secret read now. Errors name the
/// reference, never the secret.
fn auth_header(auth: &Auth) -> Result<(header::HeaderName, HeaderValue), String> {
    let read = |secret: &backplane_config::Secret| {
        secret
            .resolve()
            .map_err(|e: SecretError| format!("auth secret `{}`: {e}", secret.reference()))
    };
    let value = |text: String, what: &str| {
        HeaderValue::from_str(&text).map_err(|_| format!("the {what} is not a valid header value"))
    };
    match auth {
        Auth::Bearer(token) => Ok((
            header::AUTHORIZATION,
            value(format!("Bearer {}", read(token)?), "bearer token")?,
        )),
        Auth::Basic { user, password } => {
            use base64ct::Encoding;
            let pair = format!("{user}:{}", read(password)?);
            let encoded = base64ct::Base64::encode_string(pair.as_bytes());
            Ok((
                header::AUTHORIZATION,
                value(format!("Basic {encoded}"), "password")?,
            ))
        }
        Auth::Header { name, value: secret } => Ok((name.clone(), value(read(secret)?, "header secret")?)),
    }
}
