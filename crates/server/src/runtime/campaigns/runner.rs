//! The campaign runner: feeds each running campaign's recipients into the send queue a few
//! at a time, while its schedule window is open; finishes a campaign once every message has
//! been dealt with; reports progress as throttled `campaign.progress` events.
//!
//! What is durable is the store: each recipient's message is stored with the key
//! `campaign:<id>:<index>` before the campaign's `next_index` moves past it, so a restart
//! between the two finds the message already there (the unique key refuses the second) and
//! goes on; a message stored but not yet queued is loaded by the scheduler at start like any
//! other. Nothing is sent twice and nothing is lost.
//!
//! It wakes on `campaign.*` events (created, paused, resumed, canceled), on the traffic that
//! can make room in the queue (`message.status`, numbers connecting or dropping; passes are
//! then at least `MIN_PASS_GAP` apart), when a waiting campaign's window opens (a sleep on the
//! injected clock), and every `RESCAN` in case a wake-up was missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{
    CampaignRecord, CampaignStatus, Event, InstanceRecord, MessageRecord, MessageStatus, StoreError,
};
use chrono::{DateTime, Utc};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::progress::Totals;
use super::service::{reported_status, window_of, Campaigns};
use super::template::CampaignTemplate;
use crate::cluster::role::Role;
use crate::events::{self, EventType};
use crate::model::ids::{new_message_id, new_ordered_id};

/// The fewest of a campaign's messages kept in the queue while it runs.
const MIN_IN_QUEUE: u64 = 3;
/// And the most, whatever the pool's size.
const MAX_IN_QUEUE: u64 = 200;
/// A campaign keeps `IN_QUEUE_PER_NUMBER` × its pool's usable numbers in the queue.
const IN_QUEUE_PER_NUMBER: u64 = 2;
/// At most one `campaign.progress` per campaign this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Passes woken by send traffic are at least this far apart.
const MIN_PASS_GAP: Duration = Duration::from_millis(200);
/// A pass at least this often, whatever happens.
const RESCAN: Duration = Duration::from_secs(30);
/// After a failed pass (the store is unreachable), the next one.
const RETRY: Duration = Duration::from_secs(5);

/// What woke the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A campaign was created, paused, resumed or canceled: look now.
    Now,
    /// Sends moved on or numbers changed: there may be room in the queue.
    Traffic,
}

/// When the runner should look again, besides events.
#[derive(Debug, Default)]
struct Plan {
    /// The earliest window opening of a running campaign that waits for one (by the clock).
    window_opens: Option<DateTime<Utc>>,
    /// A throttled progress report is due, or a pass failed.
    again_in: Option<Duration>,
}

impl Plan {
    fn opens(&mut self, at: DateTime<Utc>) {
        self.window_opens = Some(self.window_opens.map_or(at, |t| t.min(at)));
    }

    fn again(&mut self, d: Duration) {
        self.again_in = Some(self.again_in.map_or(d, |t| t.min(d)));
    }
}

/// The last progress reported for a campaign.
struct Reported {
    status: &'static str,
    totals: Totals,
    at: Instant,
}

pub(super) struct Runner {
    c: Arc<Campaigns>,
    reported: HashMap<String, Reported>,
}

impl Runner {
    pub(super) fn new(c: Arc<Campaigns>) -> Runner {
        Runner { c, reported: HashMap::new() }
    }

    pub(super) async fn run(mut self, mut role: Role, mut closing: watch::Receiver<bool>) {
        let mut bus = self.c.recorder.subscribe();
        let clock = self.c.clock.clone();
        let mut last_pass = Instant::now();
        loop {
            if is_closing(&closing) {
                break;
            }
            if !role.is_held() {
                // Another node runs campaigns; what was reported there is its business.
                self.reported.clear();
                tokio::select! {
                    _ = role.gained() => {}
                    _ = closed(&mut closing) => break,
                }
                continue;
            }
            let plan = match self.pass().await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(error = %e, "a campaign pass failed; trying again shortly");
                    Plan { again_in: Some(RETRY), ..Plan::default() }
                }
            };
            last_pass = Instant::now().max(last_pass);
            let window_opens = async {
                match plan.window_opens {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let again = async {
                match plan.again_in {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                _ = closed(&mut closing) => break,
                _ = role.lost() => continue,
                _ = window_opens => Wake::Now,
                _ = again => Wake::Now,
                _ = tokio::time::sleep(RESCAN) => Wake::Now,
                w = next_wake(&mut bus) => w,
            };
            if wake == Wake::Traffic {
                tokio::select! {
                    _ = closed(&mut closing) => break,
                    _ = tokio::time::sleep_until(last_pass + MIN_PASS_GAP) => {}
                }
            }
            // Whatever else arrived meanwhile is covered by the pass about to run.
            while !matches!(bus.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
        }
        role.give_up();
    }

    /// One look at every running or paused campaign.
    async fn pass(&mut self) -> Result<Plan, StoreError> {
        let mut plan = Plan::default();
        let active = self.c.store.active_campaigns().await?;
        self.reported.retain(|id, _| active.iter().any(|c| &c.id == id));
        let mut instances: HashMap<String, Vec<InstanceRecord>> = HashMap::new();
        for c in active {
            if let Err(e) = self.step(&c, &mut instances, &mut plan).await {
                tracing::warn!(campaign = %c.id, error = %e, "running a campaign failed");
                plan.again(RETRY);
            }
        }
        Ok(plan)
    }

    async fn step(
        &mut self,
        c: &CampaignRecord,
        instances: &mut HashMap<String, Vec<InstanceRecord>>,
        plan: &mut Plan,
    ) -> Result<(), StoreError> {
        let now = self.c.clock.now();
        let window = window_of(c);
        let (mut totals, _) = self.c.totals(c).await?;
        if c.status == CampaignStatus::Running {
            let in_queue = totals.queued + totals.sending;
            if c.next_index >= c.recipients && in_queue == 0 {
                return self.finish(c, now).await;
            }
            match &window {
                Some(w) if !w.is_open(now) => {
                    if let Some(at) = w.next_open(now) {
                        plan.opens(at);
                    }
                }
                _ if c.next_index < c.recipients => {
                    let usable = match instances.get(&c.tenant_id) {
                        Some(v) => v,
                        None => {
                            let v = self.c.store.list_instances(&c.tenant_id).await?;
                            instances.entry(c.tenant_id.clone()).or_insert(v)
                        }
                    };
                    let numbers = self.c.usable_numbers(usable, &c.pool).len() as u64;
                    let target = (IN_QUEUE_PER_NUMBER * numbers).clamp(MIN_IN_QUEUE, MAX_IN_QUEUE);
                    if in_queue < target {
                        let room = u32::try_from(target - in_queue).unwrap_or(u32::MAX);
                        if self.feed(c, room).await? {
                            totals = self.c.totals(c).await?.0;
                        }
                    }
                }
                _ => {}
            }
        }
        let status = reported_status(c, window.as_ref(), now);
        self.report(c, status, totals, plan).await;
        Ok(())
    }

    /// Queues up to `room` more recipients of `c`; returns whether it queued any.
    async fn feed(&mut self, c: &CampaignRecord, room: u32) -> Result<bool, StoreError> {
        // A pause or cancel may have come since the pass began: feed only while running.
        let Some(fresh) = self.c.store.get_campaign(&c.tenant_id, &c.id).await? else {
            return Ok(false);
        };
        if fresh.status != CampaignStatus::Running {
            return Ok(false);
        }
        let recipients = self.c.store.campaign_recipients(&c.id, fresh.next_index, room).await?;
        let Some(last) = recipients.last().map(|r| r.index) else { return Ok(false) };
        let template = CampaignTemplate::parse(&c.template);
        for r in &recipients {
            let at = crate::model::time::now();
            // The recipient's spintax choice is drawn from the campaign and its index: a feed
            // repeated after a restart renders the same text, and the stored body is the
            // rendered one, so a resend is identical.
            let rendered = template.as_ref().map(|t| t.render(&c.id, r.index, &r.fields));
            let (body, status, error) = match rendered {
                Ok(Ok(text)) => (text, MessageStatus::Queued, None),
                // Checked when the campaign was accepted, so this is a stored template or
                // recipient that no longer parses: the message fails (and is counted) rather
                // than stopping the campaign.
                Ok(Err(field)) => {
                    (String::new(), MessageStatus::Failed, Some(format!("no field `{field}`")))
                }
                Err(e) => (String::new(), MessageStatus::Failed, Some(e.to_string())),
            };
            let m = MessageRecord {
                id: new_ordered_id("msg"),
                tenant_id: c.tenant_id.clone(),
                wa_id: new_message_id(),
                instance_id: None,
                forced: false,
                pool: c.pool.clone(),
                to: r.to.clone(),
                body,
                mentions: Vec::new(),
                menu: None,
                status,
                error,
                idempotency_key: Some(format!("campaign:{}:{}", c.id, r.index)),
                created_at: at,
                updated_at: at,
                sent_at: None,
                campaign_id: Some(c.id.clone()),
                content: None,
                send_at: r.send_at,
                // Counted from when it falls due, like a direct send's.
                expires_at: r.ttl_seconds.map(|t| {
                    r.send_at.filter(|s| *s > at).unwrap_or(at)
                        + chrono::Duration::seconds(i64::from(t))
                }),
                chosen_by: None,
            };
            let stored = match status {
                MessageStatus::Queued => self.c.scheduler.submit(m).await,
                _ => self.c.store.insert_message(&m).await,
            };
            match stored {
                Ok(()) => {}
                // Stored before a restart cut this feed short: that message stands (the
                // scheduler loaded it at start), and this one is not needed.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => {
                    self.c
                        .store
                        .advance_campaign(&c.id, r.index, crate::model::time::now())
                        .await?;
                    return Err(e);
                }
            }
        }
        self.c.store.advance_campaign(&c.id, last + 1, crate::model::time::now()).await?;
        // A cancel that came while this feed ran may have missed what it just queued.
        if let Some(after) = self.c.store.get_campaign(&c.tenant_id, &c.id).await? {
            if after.status == CampaignStatus::Canceled {
                self.c.withdraw_canceled(&c.tenant_id, &c.id).await?;
            }
        }
        Ok(true)
    }

    async fn finish(&mut self, c: &CampaignRecord, now: DateTime<Utc>) -> Result<(), StoreError> {
        let done = self
            .c
            .store
            .set_campaign_status(&c.id, &[CampaignStatus::Running], CampaignStatus::Finished, now)
            .await?;
        if done {
            self.reported.remove(&c.id);
            let ended = CampaignRecord { status: CampaignStatus::Finished, ..c.clone() };
            self.c.record(&ended, events::Event::CampaignFinished).await;
        }
        Ok(())
    }

    /// Records `campaign.progress` when the totals or status changed since the last report,
    /// at most every `PROGRESS_EVERY`; a change that must wait is looked at again then.
    async fn report(
        &mut self,
        c: &CampaignRecord,
        status: &'static str,
        totals: Totals,
        plan: &mut Plan,
    ) {
        if let Some(last) = self.reported.get(&c.id) {
            if last.status == status && last.totals == totals {
                return;
            }
            let since = last.at.elapsed();
            if since < PROGRESS_EVERY {
                plan.again(PROGRESS_EVERY - since);
                return;
            }
        }
        self.c.record_totals(c, events::Event::CampaignProgress, &totals).await;
        self.reported.insert(c.id.clone(), Reported { status, totals, at: Instant::now() });
    }
}

/// The next event that may give the runner work.
async fn next_wake(bus: &mut broadcast::Receiver<Arc<Event>>) -> Wake {
    loop {
        match bus.recv().await {
            Ok(ev) => match EventType::parse(&ev.kind) {
                Some(
                    EventType::CampaignCreated
                    | EventType::CampaignPaused
                    | EventType::CampaignResumed
                    | EventType::CampaignCanceled,
                ) => return Wake::Now,
                Some(
                    EventType::MessageStatus
                    | EventType::InstanceConnected
                    | EventType::InstanceDisconnected
                    | EventType::InstanceHealth,
                ) => return Wake::Traffic,
                _ => {}
            },
            Err(RecvError::Lagged(_)) => return Wake::Traffic,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

fn is_closing(closing: &watch::Receiver<bool>) -> bool {
    *closing.borrow()
}

/// Returns once the gateway is closing (or whoever would tell is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// On every node: when a campaign is canceled (on whichever node), its queued messages leave
/// this node's queue too, and any still queued in the store fail.
pub(super) async fn follow_cancels(c: Arc<Campaigns>, mut closing: watch::Receiver<bool>) {
    let mut bus = c.recorder.subscribe();
    loop {
        let ev = tokio::select! {
            _ = closed(&mut closing) => return,
            ev = bus.recv() => ev,
        };
        match ev {
            Ok(ev) if EventType::parse(&ev.kind) == Some(EventType::CampaignCanceled) => {
                let Some(id) = ev.data["campaign_id"].as_str() else { continue };
                if let Err(e) = c.withdraw_canceled(&ev.tenant_id, id).await {
                    tracing::warn!(campaign = %id, error = %e, "taking a canceled campaign's messages back failed");
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the cancel follower fell behind the event bus");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
