//! HTTP to an agent: one GET with a bounded body ([`Client::get`]) and a stream of
//! multipart parts ([`Client::stream`]). Transport failures ([`FetchError`]) are kept
//! apart from what the agent answered: an answer is bytes (a document, maybe an
//! `MTConnectError`) whatever its HTTP status, and [`crate::document`] reads it.

use std::time::Duration;

use crate::config::MtConnectSettings;
use crate::multipart::{self, SplitError, Splitter};

/// Why no answer could be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The agent could not be reached or the connection broke (refused, reset, timed out).
    #[error("{0}")]
    Transport(String),
    /// The answer is larger than `max_body`.
    #[error("the answer is larger than {limit} bytes (max_body)")]
    TooLarge { limit: u64 },
    /// The answer is not a document (an HTTP error page, a stream that breaks its framing).
    #[error("{0}")]
    NotADocument(String),
}

impl From<SplitError> for FetchError {
    fn from(e: SplitError) -> FetchError {
        match e {
            SplitError::TooLarge { limit } => FetchError::TooLarge { limit },
            other => FetchError::NotADocument(other.to_string()),
        }
    }
}

fn transport(what: &str, e: &reqwest::Error) -> FetchError {
    let mut text = format!("{what}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    FetchError::Transport(text)
}

/// A client for one agent.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    max_body: u64,
    timeout: Duration,
}

/// The answer to a GET: its HTTP status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An open stream of parts.
#[derive(Debug)]
pub struct PartStream {
    response: reqwest::Response,
    splitter: Splitter,
    ready: std::collections::VecDeque<Vec<u8>>,
    /// No bytes at all within this: the stream is dead (heartbeats keep a live one busy).
    silence: Duration,
}

/// What opening a stream gave.
#[derive(Debug)]
pub enum Opened {
    Stream(Box<PartStream>),
    /// The agent answered with one document (no streaming, or an error document).
    Answer(Answer),
}

impl Client {
    pub fn new(settings: &MtConnectSettings) -> Result<Client, String> {
        // 2.x agents answer JSON to a client that asks for it (or by their configuration's
        // default); this client reads the XML documents, so it asks for them.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/xml, text/xml"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            http,
            max_body: settings.max_body,
            timeout: settings.timeout,
        })
    }

    /// GETs `url` with `query` and reads the whole body, at most `max_body` bytes.
    pub async fn get(&self, url: &str, query: &[(&str, String)]) -> Result<Answer, FetchError> {
        let request = self.http.get(url).query(query).send();
        let response = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| FetchError::Transport(format!("GET {url}: no answer within {:?}", self.timeout)))?
            .map_err(|e| transport(&format!("GET {url}"), &e))?;
        let status = response.status().as_u16();
        let body = read_bounded(response, self.max_body, self.timeout, url).await?;
        Ok(Answer { status, body })
    }

    /// GETs a streaming `sample` (`interval=` in `query`). An agent that streams answers
    /// `multipart/x-mixed-replace`; one that does not answers one document.
    pub async fn stream(
        &self,
        url: &str,
        query: &[(&str, String)],
        silence: Duration,
    ) -> Result<Opened, FetchError> {
        let request = self.http.get(url).query(query).send();
        let response = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| FetchError::Transport(format!("GET {url}: no answer within {:?}", self.timeout)))?
            .map_err(|e| transport(&format!("GET {url}"), &e))?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        match multipart::boundary(&content_type) {
            Some(b) => Ok(Opened::Stream(Box::new(PartStream {
                response,
                splitter: Splitter::new(&b, self.max_body),
                ready: Default::default(),
                silence,
            }))),
            None => {
                let status = response.status().as_u16();
                let body = read_bounded(response, self.max_body, self.timeout, url).await?;
                Ok(Opened::Answer(Answer { status, body }))
            }
        }
    }
}

async fn read_bounded(
    mut response: reqwest::Response,
    max_body: u64,
    timeout: Duration,
    url: &str,
) -> Result<Vec<u8>, FetchError> {
    if response.content_length().is_some_and(|n| n > max_body) {
        return Err(FetchError::TooLarge { limit: max_body });
    }
    let mut body = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .map_err(|_| {
                FetchError::Transport(format!("GET {url}: the body did not arrive within {timeout:?}"))
            })?
            .map_err(|e| transport(&format!("GET {url}: reading the body"), &e))?;
        let Some(chunk) = chunk else { break };
        if (body.len() + chunk.len()) as u64 > max_body {
            return Err(FetchError::TooLarge { limit: max_body });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl PartStream {
    /// The next whole part. `Ok(None)`: the agent ended the stream.
    pub async fn next_part(&mut self) -> Result<Option<Vec<u8>>, FetchError> {
        loop {
            if let Some(part) = self.ready.pop_front() {
                return Ok(Some(part));
            }
            let chunk = tokio::time::timeout(self.silence, self.response.chunk())
                .await
                .map_err(|_| {
                    FetchError::Transport(format!(
                        "the stream was silent for {:?} (no heartbeat)",
                        self.silence
                    ))
                })?
                .map_err(|e| transport("the stream broke", &e))?;
            let Some(chunk) = chunk else { return Ok(None) };
            self.ready.extend(self.splitter.push(&chunk)?);
        }
    }
}
