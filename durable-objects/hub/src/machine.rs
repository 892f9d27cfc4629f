//! The hub as a state machine: inputs (connect, frame, close, publish, alarm, revoke) in,
//! outputs (frames to send, sockets to close, the next alarm) out. The Durable Object and
//! udc-server's in-process hub only move bytes and call these methods.

use std::collections::BTreeMap;

use serde_json::json;

use crate::names;
use crate::protocol::{
    close, Audience, ClientFrame, Event, HubFrame, Logged, NewEvent, Outboxed, PresenceState,
    Relay, Revoked, SignalStatus, MAX_FRAME_BYTES,
};
use crate::store::{DevicePresence, HubStore, StoreError};

/// A connection's id, unique within its hub.
pub type ConnId = u64;

/// Clients ping every ~25 s; two missed pings and the device is offline.
pub const HEARTBEAT_TIMEOUT_MS: i64 = 60_000;
/// How often the alarm looks for silent connections and prunes the log.
pub const ALARM_INTERVAL_MS: i64 = 15_000;
/// Retention: 7 days or 10,000 events, whichever keeps less. Older cursors get `resync_required`.
pub const RETAIN_MS: i64 = 7 * 24 * 3600 * 1000;
pub const RETAIN_EVENTS: u64 = 10_000;
/// Replay and polling read the log in pages of this size.
pub const PAGE: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub struct Conn {
    pub device_id: String,
    /// The sign-in session the socket was opened with: when it ends, the socket closes.
    pub session_id: String,
    pub last_heartbeat: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send(ConnId, String),
    Close(ConnId, u16, String),
    /// Wake the hub at this time (ms since epoch) for `alarm`.
    Alarm(i64),
}

/// A page of the log for a polling device (`GET /events`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventsPage {
    pub events: Vec<Event>,
    pub last_seq: u64,
    /// The cursor is older than the log: refetch state, then poll from `last_seq`.
    pub resync_required: bool,
    /// More events follow: poll again from the last one's seq.
    pub more: bool,
}

pub struct Hub<S: HubStore> {
    store: S,
    conns: BTreeMap<ConnId, Conn>,
    /// The last event sent to the open sockets. Events are also written to the log by others
    /// (core, in the batch of the change they report), so the hub sends what lies after this,
    /// in order, whenever it is told of new ones or logs one itself. Read from the log on first
    /// use: what was logged before this hub had sockets, its sockets replay on connecting.
    pushed: Option<u64>,
}

/// The log is pruned every hundred numbers: whether the last `count` events, ending at `last`,
/// took it across one.
fn crossed_a_hundred(last: u64, count: u64) -> bool {
    last / 100 > last.saturating_sub(count) / 100
}

fn send(conn: ConnId, frame: &HubFrame) -> Output {
    Output::Send(conn, frame.to_text())
}

impl<S: HubStore> Hub<S> {
    /// A hub over its store, with the connections that are still open (after a Durable Object
    /// wakes from hibernation, from the sockets' attachments).
    pub fn new(store: S, conns: impl IntoIterator<Item = (ConnId, Conn)>) -> Hub<S> {
        Hub {
            store,
            conns: conns.into_iter().collect(),
            pushed: None,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn connections(&self) -> &BTreeMap<ConnId, Conn> {
        &self.conns
    }

    fn device_conns(&self, device_id: &str) -> impl Iterator<Item = ConnId> + '_ {
        let device_id = device_id.to_owned();
        self.conns
            .iter()
            .filter(move |(_, c)| c.device_id == device_id)
            .map(|(id, _)| *id)
    }

    fn presence_or_new(&self, device_id: &str, now: i64) -> Result<DevicePresence, StoreError> {
        Ok(self.store.presence(device_id)?.unwrap_or(DevicePresence {
            device_id: device_id.to_owned(),
            state: PresenceState::Offline,
            last_seen: now,
            acked_seq: 0,
        }))
    }

    /// Stores an event once and sends it, and any logged before it and not yet sent, to every
    /// connection it is addressed to.
    pub fn publish(
        &mut self,
        new: NewEvent,
        now: i64,
    ) -> Result<(Logged, Vec<Output>), StoreError> {
        self.pushed()?;
        let logged = self.store.append(now, &new)?;
        let out = self.deliver()?;
        if crossed_a_hundred(logged.seq, 1) {
            self.store.prune(now - RETAIN_MS, RETAIN_EVENTS)?;
        }
        Ok((logged, out))
    }

    /// Events from a change's outbox, oldest first: logs and sends each whose id is past the
    /// last one taken, drops the rest (sent before, the answer lost), and returns the last id
    /// taken, up to which the sender may forget them. The ids and the events are stored in one
    /// step of the machine: where that is one transaction (a Durable Object's storage commits
    /// what a synchronous step wrote together), a crash cannot log an event and forget its id.
    pub fn take_outboxed(
        &mut self,
        batch: Vec<Outboxed>,
        now: i64,
    ) -> Result<(u64, Vec<Output>), StoreError> {
        let mut taken = self.store.outbox_taken()?;
        let mut out = Vec::new();
        for o in batch {
            if o.id <= taken {
                continue;
            }
            out.extend(self.publish(o.event, now)?.1);
            taken = o.id;
        }
        self.store.set_outbox_taken(taken)?;
        Ok((taken, out))
    }

    /// Events were written to the log by others (core, at most `count` of them, in the batch
    /// of their change): sends them, and prunes the log when its numbers crossed a hundred, as
    /// the hub does after its own.
    pub fn logged(&mut self, count: u64, now: i64) -> Result<Vec<Output>, StoreError> {
        let out = self.deliver()?;
        self.retain(count, now)?;
        Ok(out)
    }

    /// Prunes the log when the last `count` events logged took its numbers across a hundred:
    /// `logged` without the sending, for a hub with no sockets.
    pub fn retain(&mut self, count: u64, now: i64) -> Result<(), StoreError> {
        let (_, last) = self.store.bounds()?;
        if crossed_a_hundred(last, count) {
            self.store.prune(now - RETAIN_MS, RETAIN_EVENTS)?;
        }
        Ok(())
    }

    fn pushed(&mut self) -> Result<u64, StoreError> {
        match self.pushed {
            Some(seq) => Ok(seq),
            None => {
                let (_, last) = self.store.bounds()?;
                self.pushed = Some(last);
                Ok(last)
            }
        }
    }

    /// Sends every event logged since the last one sent, in order, to the connections each is
    /// addressed to: after core wrote events in its own batch, and after the hub logged one.
    pub fn deliver(&mut self) -> Result<Vec<Output>, StoreError> {
        let mut at = self.pushed()?;
        let mut out = Vec::new();
        loop {
            let page = self.store.after(at, PAGE)?;
            let Some(tail) = page.last() else { break };
            at = tail.seq;
            for logged in &page {
                self.fan_out(logged, &mut out);
            }
            self.pushed = Some(at);
            if page.len() < PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// One event to every connection it is for; each envelope rendered once (one for the
    /// whole account, or one per receiving device since it names the receiver), however many
    /// sockets there are.
    fn fan_out(&self, logged: &Logged, out: &mut Vec<Output>) {
        let mut frames: BTreeMap<&str, Option<String>> = BTreeMap::new();
        for (id, c) in &self.conns {
            let shared_by = match logged.to {
                Audience::All => "",
                Audience::Devices(_) => c.device_id.as_str(),
            };
            let frame = frames.entry(shared_by).or_insert_with(|| {
                logged
                    .for_device(&c.device_id)
                    .map(|e| HubFrame::Event(e).to_text())
            });
            if let Some(text) = frame {
                out.push(Output::Send(*id, text.clone()));
            }
        }
    }

    /// Ephemeral traffic for one device's open sockets; nothing is stored. One send per
    /// socket reached.
    pub fn relay(&self, relay: Relay, now: i64) -> Vec<Output> {
        let frame = HubFrame::Relay {
            event: relay.event,
            at: now,
            data: relay.data,
        }
        .to_text();
        self.device_conns(&relay.device_id)
            .map(|c| Output::Send(c, frame.clone()))
            .collect()
    }

    fn set_state(
        &mut self,
        device_id: &str,
        state: PresenceState,
        now: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), StoreError> {
        let mut p = self.presence_or_new(device_id, now)?;
        let changed = p.state != state;
        p.state = state;
        p.last_seen = now;
        self.store.set_presence(&p)?;
        if changed {
            let name = format!("{}{}", names::DEVICE_PRESENCE_PREFIX, state.as_str());
            let (_, sent) = self.publish(
                NewEvent::to_all(&name, json!({ "device_id": device_id, "last_seen": now })),
                now,
            )?;
            out.extend(sent);
        }
        Ok(())
    }

    /// A device's socket opened. Replays what it missed after its cursor (or its last ack),
    /// then marks it online.
    pub fn connect(
        &mut self,
        conn: ConnId,
        device_id: &str,
        session_id: &str,
        resume_after: Option<u64>,
        now: i64,
    ) -> Result<Vec<Output>, StoreError> {
        // What is logged but not yet sent goes to the sockets already open first, and the new
        // one replays up to the same point: anything logged meanwhile reaches every socket on
        // the next delivery, the new one included, and none twice.
        let mut out = self.deliver()?;
        let last = self.pushed()?;
        let known = self.presence_or_new(device_id, now)?;
        let (oldest, _) = self.store.bounds()?;
        let cursor = resume_after
            .unwrap_or(if known.acked_seq > 0 {
                known.acked_seq
            } else {
                last
            })
            .min(last);
        if oldest.is_some_and(|o| cursor.saturating_add(1) < o) {
            out.push(send(
                conn,
                &HubFrame::ResyncRequired {
                    oldest_seq: oldest.unwrap_or(0),
                    last_seq: last,
                },
            ));
        } else {
            let mut at = cursor;
            while at < last {
                let page = self.store.after(at, PAGE)?;
                let Some(tail) = page.last() else { break };
                at = tail.seq;
                for e in page
                    .iter()
                    .filter(|e| e.seq <= last)
                    .filter_map(|e| e.for_device(device_id))
                {
                    out.push(send(conn, &HubFrame::Event(e)));
                }
            }
            out.push(send(
                conn,
                &HubFrame::Ready {
                    resume_after: cursor,
                    last_seq: last,
                },
            ));
        }
        self.conns.insert(
            conn,
            Conn {
                device_id: device_id.to_owned(),
                session_id: session_id.to_owned(),
                last_heartbeat: now,
            },
        );
        // Idle stays idle across reconnects; offline becomes online.
        let state = if known.state == PresenceState::Idle {
            PresenceState::Idle
        } else {
            PresenceState::Online
        };
        self.set_state(device_id, state, now, &mut out)?;
        out.push(Output::Alarm(now + ALARM_INTERVAL_MS));
        Ok(out)
    }

    /// A text frame from a connection.
    pub fn frame(&mut self, conn: ConnId, text: &str, now: i64) -> Result<Vec<Output>, StoreError> {
        let mut out = Vec::new();
        let Some(device_id) = self.conns.get_mut(&conn).map(|c| {
            c.last_heartbeat = now;
            c.device_id.clone()
        }) else {
            return Ok(out);
        };
        if text.len() > MAX_FRAME_BYTES {
            out.push(send(
                conn,
                &HubFrame::error(
                    "frame_too_large",
                    format!("frames are at most {MAX_FRAME_BYTES} bytes"),
                ),
            ));
            return Ok(out);
        }
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                out.push(send(
                    conn,
                    &HubFrame::error("malformed_frame", format!("cannot read this frame: {e}")),
                ));
                return Ok(out);
            }
        };
        match frame {
            ClientFrame::Ping => {
                let mut p = self.presence_or_new(&device_id, now)?;
                p.last_seen = now;
                self.store.set_presence(&p)?;
                out.push(send(conn, &HubFrame::Pong { at: now }));
            }
            ClientFrame::Ack { seq } => {
                let mut p = self.presence_or_new(&device_id, now)?;
                let (_, last) = self.store.bounds()?;
                p.acked_seq = p.acked_seq.max(seq.min(last));
                p.last_seen = now;
                self.store.set_presence(&p)?;
            }
            ClientFrame::Presence { state } => {
                if state == PresenceState::Offline {
                    out.push(send(
                        conn,
                        &HubFrame::error(
                            "invalid_state",
                            "presence is online or idle; close the socket to go offline",
                        ),
                    ));
                } else {
                    self.set_state(&device_id, state, now, &mut out)?;
                }
            }
            ClientFrame::Signal {
                to_device,
                payload,
                reference,
            } => {
                let targets: Vec<ConnId> = self
                    .device_conns(&to_device)
                    .filter(|c| *c != conn)
                    .collect();
                let status = if targets.is_empty() {
                    SignalStatus::DeviceOffline
                } else {
                    SignalStatus::Delivered
                };
                let relay = HubFrame::Signal {
                    from_device: device_id.clone(),
                    payload,
                }
                .to_text();
                out.extend(targets.into_iter().map(|t| Output::Send(t, relay.clone())));
                out.push(send(
                    conn,
                    &HubFrame::SignalResult {
                        to_device,
                        status,
                        reference,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// A connection closed (by the client, the network, or the hub).
    pub fn closed(&mut self, conn: ConnId, now: i64) -> Result<Vec<Output>, StoreError> {
        let mut out = Vec::new();
        if let Some(c) = self.conns.remove(&conn) {
            if self.device_conns(&c.device_id).next().is_none() {
                self.set_state(&c.device_id, PresenceState::Offline, now, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Closes every socket whose access was revoked: a removed device's, an ended session's, or
    /// a deleted account's.
    pub fn revoke(&mut self, revoked: &Revoked, now: i64) -> Result<Vec<Output>, StoreError> {
        let mut out = Vec::new();
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| match revoked {
                Revoked::Device(id) => c.device_id == *id,
                Revoked::Session(id) => c.session_id == *id,
                Revoked::Account => true,
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in conns {
            out.push(Output::Close(conn, close::REVOKED, "access revoked".into()));
            out.extend(self.closed(conn, now)?);
        }
        Ok(out)
    }

    /// Periodic work: closes connections that stopped sending heartbeats, prunes the log, and
    /// asks for the next alarm while anyone is connected.
    pub fn alarm(&mut self, now: i64) -> Result<Vec<Output>, StoreError> {
        let mut out = Vec::new();
        let silent: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last_heartbeat + HEARTBEAT_TIMEOUT_MS < now)
            .map(|(id, _)| *id)
            .collect();
        for conn in silent {
            out.push(Output::Close(
                conn,
                close::HEARTBEAT_TIMEOUT,
                "no heartbeat".into(),
            ));
            out.extend(self.closed(conn, now)?);
        }
        self.store.prune(now - RETAIN_MS, RETAIN_EVENTS)?;
        if !self.conns.is_empty() {
            out.push(Output::Alarm(now + ALARM_INTERVAL_MS));
        }
        Ok(out)
    }

    /// Presence of every device the hub has seen; devices with an open socket are online or idle.
    pub fn presence(&self) -> Result<Vec<DevicePresence>, StoreError> {
        self.store.all_presence()
    }

    /// The log after `after` for one device (polling, where no socket is possible).
    pub fn events_after(&self, device_id: &str, after: u64) -> Result<EventsPage, StoreError> {
        let (oldest, last) = self.store.bounds()?;
        if oldest.is_some_and(|o| after.saturating_add(1) < o) {
            return Ok(EventsPage {
                events: Vec::new(),
                last_seq: last,
                resync_required: true,
                more: false,
            });
        }
        let page = self.store.after(after, PAGE)?;
        let more = page.last().is_some_and(|e| e.seq < last);
        let events = page
            .iter()
            .filter_map(|e| e.for_device(device_id))
            .collect();
        Ok(EventsPage {
            events,
            last_seq: last,
            resync_required: false,
            more,
        })
    }
}
