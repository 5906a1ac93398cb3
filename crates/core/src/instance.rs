//! The instance (one WhatsApp number) state machine: a pure transition function from the
//! current `(status, reason, detail)` and a trigger to the next state, or a refusal.
//!
//! The server applies every driver event and operator command through [`InstanceState::apply`],
//! so no code path can put an instance in a state the table below does not allow.

use serde::{Deserialize, Serialize};

/// Where the number's connection is, as docs/api.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    QrPending,
    Connecting,
    Connected,
    Disconnected,
}

/// Why the number is not (or not yet again) connected. `None` while connected and while a
/// fresh link is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The connection dropped and reconnects on its own (status `connecting`).
    Transient,
    /// Unlinked: a new QR scan is needed.
    LoggedOut,
    /// WhatsApp refused the number; it is out of rotation.
    Banned,
    /// An operator disconnected it.
    Stopped,
    /// No one scanned the QR code in time.
    QrTimeout,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::QrPending => "qr_pending",
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Disconnected => "disconnected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "qr_pending" => Status::QrPending,
            "connecting" => Status::Connecting,
            "connected" => Status::Connected,
            "disconnected" => Status::Disconnected,
            _ => return None,
        })
    }

    pub const ALL: [Status; 4] =
        [Status::QrPending, Status::Connecting, Status::Connected, Status::Disconnected];
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Transient => "transient",
            Reason::LoggedOut => "logged_out",
            Reason::Banned => "banned",
            Reason::Stopped => "stopped",
            Reason::QrTimeout => "qr_timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "transient" => Reason::Transient,
            "logged_out" => Reason::LoggedOut,
            "banned" => Reason::Banned,
            "stopped" => Reason::Stopped,
            "qr_timeout" => Reason::QrTimeout,
            _ => return None,
        })
    }

    pub const ALL: [Reason; 5] =
        [Reason::Transient, Reason::LoggedOut, Reason::Banned, Reason::Stopped, Reason::QrTimeout];
}

/// The full observable state of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub status: Status,
    pub reason: Option<Reason>,
    pub detail: Option<String>,
}

/// Everything that can move an instance: driver events and operator commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The supervisor starts the connection (on create, on `connect`, at gateway start).
    /// `has_session` tells whether a stored session exists, which decides QR vs. login.
    Start { has_session: bool },
    /// The network issued (or rotated) a QR code.
    QrIssued,
    /// A phone scanned the QR (or entered the pair code): the device is linked and logs in.
    Paired,
    /// The connection is up and authenticated.
    Connected,
    /// The connection dropped; the driver reconnects on its own.
    Dropped { detail: String },
    /// The driver is retrying a dropped connection.
    Reconnecting,
    /// WhatsApp unlinked the device (or an operator logged it out).
    LoggedOut { detail: String },
    /// WhatsApp refused the number.
    Banned { detail: String },
    /// The QR codes ran out without a scan.
    QrTimeout,
    /// An operator disconnected the number (session kept).
    Stop,
    /// The stored session could not be opened (tampered, or sealed with another key).
    SessionUnreadable { detail: String },
    /// The network ended the connection for a cause that needs an operator and is neither a
    /// logout nor a ban (another session took the number over, the client version is
    /// outdated, the server refused the connection); `detail` says what to do.
    Ended { detail: String },
}

/// The outcome of an allowed trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: InstanceState,
    pub to: InstanceState,
}

impl Transition {
    /// True when the trigger changed what an observer can see.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an instance that is {from} cannot take `{trigger}`")]
pub struct TransitionError {
    pub from: &'static str,
    pub trigger: &'static str,
}

impl Trigger {
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Start { .. } => "start",
            Trigger::QrIssued => "qr_issued",
            Trigger::Paired => "paired",
            Trigger::Connected => "connected",
            Trigger::Dropped { .. } => "dropped",
            Trigger::Reconnecting => "reconnecting",
            Trigger::LoggedOut { .. } => "logged_out",
            Trigger::Banned { .. } => "banned",
            Trigger::QrTimeout => "qr_timeout",
            Trigger::Stop => "stop",
            Trigger::SessionUnreadable { .. } => "session_unreadable",
            Trigger::Ended { .. } => "ended",
        }
    }
}

impl InstanceState {
    /// The state of an instance that exists but was never started.
    pub fn new_stopped() -> Self {
        Self::disconnected(Reason::Stopped, Some("not started yet".into()))
    }

    pub fn qr_pending() -> Self {
        Self { status: Status::QrPending, reason: None, detail: None }
    }

    pub fn connecting(reason: Option<Reason>, detail: Option<String>) -> Self {
        Self { status: Status::Connecting, reason, detail }
    }

    pub fn connected() -> Self {
        Self { status: Status::Connected, reason: None, detail: None }
    }

    pub fn disconnected(reason: Reason, detail: Option<String>) -> Self {
        Self { status: Status::Disconnected, reason: Some(reason), detail }
    }

    /// True when a connection attempt is running (the supervisor holds a driver connection).
    pub fn is_active(&self) -> bool {
        self.status != Status::Disconnected
    }

    /// Applies `trigger` and returns the transition, or refuses it.
    ///
    /// The table (`from` → `to`):
    /// - `start`: disconnected → `connecting` (stored session) or `qr_pending` (none).
    /// - `qr_issued`: qr_pending → qr_pending; connecting (no session any more) → qr_pending.
    /// - `paired`: qr_pending → connecting.
    /// - `connected`: connecting → connected.
    /// - `dropped`: connected, connecting, qr_pending → connecting/`transient`.
    /// - `reconnecting`: connecting → connecting (reason kept).
    /// - `logged_out`: any → disconnected/`logged_out`.
    /// - `banned`: connecting, connected → disconnected/`banned`.
    /// - `qr_timeout`: qr_pending → disconnected/`qr_timeout`.
    /// - `stop`: qr_pending, connecting, connected → disconnected/`stopped`; disconnected
    ///   stays as it is (stopping a stopped number keeps the reason it stopped for).
    /// - `session_unreadable`: disconnected, connecting → disconnected/`logged_out` with detail.
    /// - `ended`: qr_pending, connecting, connected → disconnected/`stopped` with the cause.
    pub fn apply(&self, trigger: &Trigger) -> Result<Transition, TransitionError> {
        use Status::*;
        let refuse = || TransitionError { from: self.status.as_str(), trigger: trigger.name() };
        let to = match (self.status, trigger) {
            (Disconnected, Trigger::Start { has_session: true }) => Self::connecting(None, None),
            (Disconnected, Trigger::Start { has_session: false }) => Self::qr_pending(),
            (QrPending | Connecting, Trigger::QrIssued) => Self::qr_pending(),
            (QrPending, Trigger::Paired) => Self::connecting(None, None),
            (Connecting, Trigger::Connected) => Self::connected(),
            (Connected | Connecting | QrPending, Trigger::Dropped { detail }) => {
                Self::connecting(Some(Reason::Transient), Some(detail.clone()))
            }
            (Connecting, Trigger::Reconnecting) => self.clone(),
            (_, Trigger::LoggedOut { detail }) => {
                Self::disconnected(Reason::LoggedOut, Some(detail.clone()))
            }
            (Connecting | Connected, Trigger::Banned { detail }) => {
                Self::disconnected(Reason::Banned, Some(detail.clone()))
            }
            (QrPending, Trigger::QrTimeout) => Self::disconnected(
                Reason::QrTimeout,
                Some("no one scanned the QR code in time".into()),
            ),
            (QrPending | Connecting | Connected, Trigger::Stop) => {
                Self::disconnected(Reason::Stopped, Some("disconnected by an operator".into()))
            }
            (Disconnected, Trigger::Stop) => self.clone(),
            (Disconnected | Connecting, Trigger::SessionUnreadable { detail }) => {
                Self::disconnected(Reason::LoggedOut, Some(detail.clone()))
            }
            (QrPending | Connecting | Connected, Trigger::Ended { detail }) => {
                Self::disconnected(Reason::Stopped, Some(detail.clone()))
            }
            _ => return Err(refuse()),
        };
        Ok(Transition { from: self.clone(), to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        s.to_string()
    }

    /// One representative state per status, plus the disconnected reasons.
    fn all_states() -> Vec<InstanceState> {
        let mut v = vec![
            InstanceState::qr_pending(),
            InstanceState::connecting(None, None),
            InstanceState::connecting(Some(Reason::Transient), Some(d("socket closed"))),
            InstanceState::connected(),
        ];
        for r in Reason::ALL {
            v.push(InstanceState::disconnected(r, Some(d("why"))));
        }
        v
    }

    fn all_triggers() -> Vec<Trigger> {
        vec![
            Trigger::Start { has_session: true },
            Trigger::Start { has_session: false },
            Trigger::QrIssued,
            Trigger::Paired,
            Trigger::Connected,
            Trigger::Dropped { detail: d("socket closed") },
            Trigger::Reconnecting,
            Trigger::LoggedOut { detail: d("unlinked") },
            Trigger::Banned { detail: d("code 101") },
            Trigger::QrTimeout,
            Trigger::Stop,
            Trigger::SessionUnreadable { detail: d("tampered") },
            Trigger::Ended { detail: d("replaced") },
        ]
    }

    /// The expected outcome of every (state, trigger) pair: `Some(to)` when allowed,
    /// `None` when it must be refused. Written out independently of `apply`.
    fn expected(from: &InstanceState, t: &Trigger) -> Option<InstanceState> {
        use Status::*;
        let s = from.status;
        match t {
            Trigger::Start { has_session } => (s == Disconnected).then(|| {
                if *has_session {
                    InstanceState::connecting(None, None)
                } else {
                    InstanceState::qr_pending()
                }
            }),
            Trigger::QrIssued => {
                matches!(s, QrPending | Connecting).then(InstanceState::qr_pending)
            }
            Trigger::Paired => (s == QrPending).then(|| InstanceState::connecting(None, None)),
            Trigger::Connected => (s == Connecting).then(InstanceState::connected),
            Trigger::Dropped { .. } => (s != Disconnected).then(|| {
                InstanceState::connecting(Some(Reason::Transient), Some(d("socket closed")))
            }),
            Trigger::Reconnecting => (s == Connecting).then(|| from.clone()),
            Trigger::LoggedOut { .. } => {
                Some(InstanceState::disconnected(Reason::LoggedOut, Some(d("unlinked"))))
            }
            Trigger::Banned { .. } => matches!(s, Connecting | Connected)
                .then(|| InstanceState::disconnected(Reason::Banned, Some(d("code 101")))),
            Trigger::QrTimeout => (s == QrPending).then(|| {
                InstanceState::disconnected(
                    Reason::QrTimeout,
                    Some(d("no one scanned the QR code in time")),
                )
            }),
            Trigger::Stop => Some(if s == Disconnected {
                from.clone()
            } else {
                InstanceState::disconnected(Reason::Stopped, Some(d("disconnected by an operator")))
            }),
            Trigger::SessionUnreadable { .. } => matches!(s, Disconnected | Connecting)
                .then(|| InstanceState::disconnected(Reason::LoggedOut, Some(d("tampered")))),
            Trigger::Ended { .. } => (s != Disconnected)
                .then(|| InstanceState::disconnected(Reason::Stopped, Some(d("replaced")))),
        }
    }

    #[test]
    fn every_pair_of_state_and_trigger_matches_the_table() {
        let mut allowed = 0;
        let mut refused = 0;
        for from in all_states() {
            for t in all_triggers() {
                match (from.apply(&t), expected(&from, &t)) {
                    (Ok(tr), Some(to)) => {
                        assert_eq!(tr.to, to, "{from:?} + {t:?}");
                        assert_eq!(tr.from, from);
                        allowed += 1;
                    }
                    (Err(e), None) => {
                        assert_eq!(e.from, from.status.as_str());
                        assert_eq!(e.trigger, t.name());
                        refused += 1;
                    }
                    (got, want) => panic!("{from:?} + {t:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        // Guard against a table that silently allows or refuses everything.
        assert!(allowed > 30 && refused > 30, "allowed {allowed}, refused {refused}");
    }

    #[test]
    fn the_happy_path_of_a_fresh_number() {
        let mut s = InstanceState::new_stopped();
        for t in [
            Trigger::Start { has_session: false },
            Trigger::QrIssued,
            Trigger::QrIssued,
            Trigger::Paired,
            Trigger::Connected,
        ] {
            s = s.apply(&t).unwrap().to;
        }
        assert_eq!(s, InstanceState::connected());
    }

    #[test]
    fn a_transient_drop_reconnects_and_clears_the_reason() {
        let s = InstanceState::connected();
        let s = s.apply(&Trigger::Dropped { detail: d("eof") }).unwrap().to;
        assert_eq!((s.status, s.reason), (Status::Connecting, Some(Reason::Transient)));
        let s = s.apply(&Trigger::Reconnecting).unwrap().to;
        assert_eq!(s.reason, Some(Reason::Transient));
        let s = s.apply(&Trigger::Connected).unwrap().to;
        assert_eq!(s, InstanceState::connected());
    }

    #[test]
    fn a_banned_number_cannot_connect_without_a_new_start() {
        let s = InstanceState::connected()
            .apply(&Trigger::Banned { detail: d("code 101") })
            .unwrap()
            .to;
        assert!(s.apply(&Trigger::Connected).is_err());
        assert!(s.apply(&Trigger::Paired).is_err());
        // Stopping keeps the ban visible.
        assert_eq!(s.apply(&Trigger::Stop).unwrap().to.reason, Some(Reason::Banned));
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Status::parse("online"), None);
    }
}
