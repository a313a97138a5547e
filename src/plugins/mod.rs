//! plugins/: what a client handle does with the requests it gets. Each plugin is a unit
//! struct implementing [`crate::core::plugin::Plugin`]; it owns its per-handle state (its
//! `Handle` type), its per-shard state (a slot) and its process-wide services, and reaches
//! the proxy only through the [`HandleCtx`] and [`Host`] it is given.
//!
//! [`registry`] is the one list of the plugins this build has; nothing outside plugins/
//! names a plugin.

pub mod call;
pub mod candidates;
pub mod directory;
pub mod dummytest;
pub mod echotest;
pub mod p2pcall;
pub mod remote;
pub mod videocall;
pub mod videoroom;

pub use crate::core::backend_handle::BackendHandle;
pub use crate::core::host::{HandleCtx, Host, Peers};
pub use crate::core::plugin::{
    Adoptable, Adoption, AnyPlugin, BackendRef, LocalFuture, Plugin, PluginMessage, PluginMeta,
    PluginRoute, Respond, RouteFuture, StartCx, Trickle,
};

use std::rc::Rc;

use serde_json::value::RawValue;

use crate::api::error::JanusError;
use crate::api::reply;

/// Every plugin of this build, in `info.plugins` order.
pub fn registry() -> &'static [&'static dyn AnyPlugin] {
    &[
        &echotest::EchoTest,
        &dummytest::DummyTest,
        &videocall::VideoCall,
        &p2pcall::P2pCall,
        &videoroom::VideoRoom,
    ]
}
