//! The server status state machine of spec 03 §3. Pure: no clock, no I/O; the prober and
//! the REST interface feed it events and store the result in [`crate::state`].

use std::time::Duration;

/// Server status as the proxy understands it (the numeric codes are on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Janus answered the last probe in time.
    Normal,
    /// Initial state; probe failed; or just left maintenance.
    Abnormal,
    /// Set by the operator; probe results are ignored until `stop_maintenance`.
    Maintenance,
    /// Janus answered but slower than `hwm_threshold` (high-water mark).
    Hwm,
}

impl Status {
    /// The wire code: 0 NORMAL, 1 ABNORMAL, 2 MAINTENANCE, 3 HWM.
    pub fn code(self) -> u8 {
        match self {
            Status::Normal => 0,
            Status::Abnormal => 1,
            Status::Maintenance => 2,
            Status::Hwm => 3,
        }
    }
}

/// What changes the status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// Janus answered a probe after this round trip.
    ProbeOk(Duration),
    /// The probe failed (connect error, timeout, socket closed, Janus `error`).
    ProbeFailed,
    /// REST `start_maintenance`.
    StartMaintenance,
    /// REST `stop_maintenance`.
    StopMaintenance,
}

/// The status after `event`. `hwm_threshold` is in seconds; 0 disables HWM.
pub fn next(current: Status, event: Event, hwm_threshold: f64) -> Status {
    match (current, event) {
        (_, Event::StartMaintenance) => Status::Maintenance,
        (Status::Maintenance, Event::StopMaintenance) => Status::Abnormal,
        (s, Event::StopMaintenance) => s,
        (Status::Maintenance, _) => Status::Maintenance,
        (_, Event::ProbeFailed) => Status::Abnormal,
        (_, Event::ProbeOk(rtt)) => {
            if hwm_threshold > 0.0 && rtt.as_secs_f64() > hwm_threshold {
                Status::Hwm
            } else {
                Status::Normal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn probe_results() {
        assert_eq!(
            next(Status::Abnormal, Event::ProbeOk(MS(5)), 0.0),
            Status::Normal
        );
        assert_eq!(
            next(Status::Abnormal, Event::ProbeOk(MS(5000)), 0.0),
            Status::Normal
        );
        assert_eq!(
            next(Status::Normal, Event::ProbeOk(MS(1500)), 1.0),
            Status::Hwm
        );
        assert_eq!(
            next(Status::Hwm, Event::ProbeOk(MS(1000)), 1.0),
            Status::Normal
        );
        assert_eq!(
            next(Status::Normal, Event::ProbeFailed, 1.0),
            Status::Abnormal
        );
        assert_eq!(next(Status::Hwm, Event::ProbeFailed, 0.0), Status::Abnormal);
    }

    #[test]
    fn maintenance_freezes_until_stopped() {
        let s = next(Status::Normal, Event::StartMaintenance, 0.0);
        assert_eq!(s, Status::Maintenance);
        assert_eq!(next(s, Event::ProbeOk(MS(1)), 0.0), Status::Maintenance);
        assert_eq!(next(s, Event::ProbeFailed, 0.0), Status::Maintenance);
        let s = next(s, Event::StopMaintenance, 0.0);
        assert_eq!(s, Status::Abnormal);
        assert_eq!(next(s, Event::ProbeOk(MS(1)), 0.0), Status::Normal);
        // stop without start changes nothing
        assert_eq!(
            next(Status::Normal, Event::StopMaintenance, 0.0),
            Status::Normal
        );
    }

    #[test]
    fn codes() {
        let all = [
            Status::Normal,
            Status::Abnormal,
            Status::Maintenance,
            Status::Hwm,
        ];
        assert_eq!(all.map(Status::code), [0, 1, 2, 3]);
    }
}
