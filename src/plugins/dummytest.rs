//! `janus.plugin.dummytest`: answers locally, without a backend (spec 04 §3). An aid for
//! testing clients and the proxy's own request path.

use super::*;
use crate::api::json::RawObject;

pub struct DummyTest;

static META: PluginMeta = PluginMeta {
    package: "janus.plugin.dummytest",
    name: "dummytest",
    display_name: "JANUS DummyTest plugin",
    author: "opensight.cn",
    description: "A test plugin for the Janus API that answers without any backend server.",
    version: 1,
    version_string: "0.0.1",
};

const DATA: &str = r#"{"dummytest":"successful"}"#;

impl Plugin for DummyTest {
    /// Nothing to keep.
    type Handle = ();

    fn meta(&self) -> &'static PluginMeta {
        &META
    }

    fn attach(&self, _ctx: HandleCtx) -> LocalFuture<Result<(), JanusError>> {
        Box::pin(async { Ok(()) })
    }

    fn is_async(&self, msg: &PluginMessage) -> bool {
        RawObject::parse(msg.body.get()).is_ok_and(|b| b.get("async").is_some())
    }

    fn message(&self, ctx: &HandleCtx, _h: &Rc<()>, msg: PluginMessage) -> Option<String> {
        if Plugin::is_async(self, &msg) {
            ctx.push(reply::plugin_event(
                ctx.addr(),
                Some(msg.transaction),
                META.package,
                DATA,
                msg.jsep.map(RawValue::get),
            ));
            None
        } else {
            Some(DATA.to_string())
        }
    }
}
