//! The running `opcua-server` sink.

use backplane_connector::{ComponentError, Sink, SinkContext, SinkIo};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::config::ServerSettings;

/// One `opcua-server` sink.
#[derive(Debug)]
pub struct ServerSink {
    name: String,
    settings: ServerSettings,
}

impl ServerSink {
    pub fn new(ctx: &SinkContext<'_, ServerSettings>) -> ServerSink {
        ServerSink {
            name: ctx.name.to_owned(),
            settings: ctx.settings.clone(),
        }
    }
}

impl Sink for ServerSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let _ = (&self.name, &self.settings);
            while io.recv().await.is_some() {}
            Ok(())
        }
        .boxed()
    }
}
