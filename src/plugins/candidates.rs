//! ICE candidates a client trickles before its backend handle exists: split into single
//! candidates and kept, bounded, until they can be sent (the call plugins, the VideoRoom).

use serde_json::value::RawValue;

use super::Trickle;
use crate::api::error::{Code, JanusError};

/// Splits raw candidates (`candidate` object or `candidates` array) into single objects.
pub fn split(t: &Trickle) -> Vec<String> {
    if t.field == "candidate" {
        return vec![t.value.get().to_string()];
    }
    serde_json::from_str::<Vec<&RawValue>>(t.value.get())
        .map(|v| v.into_iter().map(|c| c.get().to_string()).collect())
        .unwrap_or_default()
}

/// Adds `new` to `buffer` unless that would make more than `max`.
///
/// # Errors
/// 503 when the buffer is full (the candidates are dropped).
pub fn buffer(buffer: &mut Vec<String>, new: Vec<String>, max: usize) -> Result<(), JanusError> {
    if buffer.len() + new.len() > max {
        return Err(JanusError::new(
            Code::ServiceUnavailable,
            format!("Too many candidates buffered for this handle (max {max})"),
        ));
    }
    buffer.extend(new);
    Ok(())
}

/// The buffered candidates as one `candidates` array, emptying the buffer.
pub fn take_all(buffer: &mut Vec<String>) -> Option<String> {
    if buffer.is_empty() {
        return None;
    }
    let list = format!("[{}]", buffer.join(","));
    buffer.clear();
    Some(list)
}
