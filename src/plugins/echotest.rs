//! `janus.plugin.echotest`: a transparent relay to one backend echotest handle per
//! frontend handle (spec 04 §2). Bodies and JSEPs go to the backend untouched; its
//! answers come back with the client's ids and transaction.

use std::rc::Rc;

use tracing::debug;

use super::*;
use crate::api::error::Code;
use crate::api::json::RawObject;

pub struct EchoTest;

static META: PluginMeta = PluginMeta {
    package: "janus.plugin.echotest",
    name: "echotest",
    display_name: "JANUS EchoTest plugin",
    author: "opensight.cn",
    description: "A trivial EchoTest plugin for Janus-cloud, relaying to a backend Janus EchoTest.",
    version: 7,
    version_string: "0.0.7",
};

/// `plugindata.data` of an error event.
fn error_data(e: &JanusError) -> String {
    let mut w = crate::api::json::ObjectWriter::new();
    w.str("echotest", "event")
        .u64("error_code", e.code as u64)
        .str("error", &e.reason);
    String::from_utf8(w.finish()).unwrap_or_default()
}

impl Plugin for EchoTest {
    /// The backend echotest handle that mirrors this one.
    type Handle = BackendHandle;

    fn meta(&self) -> &'static PluginMeta {
        &META
    }

    fn attach(&self, ctx: HandleCtx) -> LocalFuture<Result<BackendHandle, JanusError>> {
        Box::pin(async move {
            let link = ctx.host().select_backend()?;
            let b = BackendHandle::attach(&link, META.package, &ctx).await?;
            debug!(server = %link.server.name, backend_handle = b.id, handle = ctx.handle_id, "echotest attached");
            Ok(b)
        })
    }

    fn message(
        &self,
        ctx: &HandleCtx,
        b: &Rc<BackendHandle>,
        msg: PluginMessage,
    ) -> Option<String> {
        let transaction: Rc<str> = msg.transaction.into();
        let mut fields = [("body", msg.body.get()), ("jsep", "")];
        let fields = match msg.jsep {
            Some(j) => {
                fields[1].1 = j.get();
                &fields[..]
            }
            None => &fields[..1],
        };
        let ctx = ctx.clone();
        b.send_in_order(
            fields,
            Box::new(move |r| {
                let frame = match r {
                    Ok(m) => {
                        let data = m
                            .get("plugindata")
                            .and_then(|p| RawObject::parse(p.get()).ok())
                            .and_then(|p| p.get("data"));
                        match data {
                            Some(d) => reply::plugin_event(
                                ctx.addr(),
                                Some(&transaction),
                                META.package,
                                d.get(),
                                m.get("jsep").map(RawValue::get),
                            ),
                            None => reply::plugin_event(
                                ctx.addr(),
                                Some(&transaction),
                                META.package,
                                &error_data(&JanusError::new(
                                    Code::BadGateway,
                                    "Invalid backend reply",
                                )),
                                None,
                            ),
                        }
                    }
                    Err(e) => reply::plugin_event(
                        ctx.addr(),
                        Some(&transaction),
                        META.package,
                        &error_data(&e),
                        None,
                    ),
                };
                ctx.push(frame);
            }),
        );
        None
    }

    fn trickle(&self, _ctx: &HandleCtx, b: &Rc<BackendHandle>, t: Trickle, respond: Respond) {
        b.trickle(&t, respond);
    }

    fn hangup(&self, _ctx: &HandleCtx, b: &Rc<BackendHandle>, respond: Respond) {
        b.hangup(respond);
    }

    /// The whole state is the backend handle: another proxy can take it over.
    fn adoption(&self, _ctx: &HandleCtx, b: &Rc<BackendHandle>) -> Option<Adoptable> {
        b.adoption().map(Adoptable::backend)
    }

    fn adopt(
        &self,
        ctx: HandleCtx,
        b: Option<BackendHandle>,
        _state: Option<String>,
    ) -> LocalFuture<Option<BackendHandle>> {
        if let Some(b) = &b {
            debug!(server = %b.link.server.name, backend_handle = b.id, handle = ctx.handle_id, "echotest adopted");
        }
        Box::pin(async move { b })
    }

    fn detach(&self, _ctx: &HandleCtx, b: Rc<BackendHandle>) {
        // Forgotten first, so the backend's own `detached` is not relayed.
        b.detach();
    }
}
