//! [`ChatStore`]: the chat list (`chats`, kept by the triggers of the `chats` migration) and
//! a chat's history read from `inbound` and `messages` together. Every read is a keyset range
//! of an index: a page costs what it returns, never what came before it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{cut_millis, inbound_from_row, q, ts, Backend, SqlStore, INBOUND_COLUMNS};
use crate::sql::{message_from_row, MESSAGE_COLUMNS};
use crate::time::to_millis;
use crate::{ChatEntry, ChatEntryPosition, ChatPosition, ChatQuery, ChatRecord, ChatStore, Result};

/// A value bound to a statement built piece by piece.
enum Arg {
    Text(String),
    Int(i64),
}

/// A statement whose placeholders are numbered as they are written, so that they appear in
/// increasing order (SQLite numbers `$N` parameters by first appearance).
#[derive(Default)]
struct Built {
    sql: String,
    args: Vec<Arg>,
}

impl Built {
    fn new(sql: &str) -> Self {
        Built { sql: sql.to_string(), args: Vec::new() }
    }

    /// Appends `sql` with each `?` replaced by the next placeholder, bound to `args` in order.
    fn push(&mut self, sql: &str, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        let mut args = args.into_iter();
        for part in sql.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(text) => {
                    self.sql.push_str(text);
                    self.args.push(args.next().expect("an argument for every placeholder"));
                    self.sql.push_str(&format!("${}", self.args.len()));
                }
                None => self.sql.push_str(part),
            }
        }
        self
    }

    async fn fetch_all<DB: Backend>(self, c: &mut DB::Connection) -> Result<Vec<DB::Row>> {
        let mut query = q::<DB>(&self.sql);
        for a in self.args {
            query = match a {
                Arg::Text(s) => query.bind(s),
                Arg::Int(n) => query.bind(n),
            };
        }
        query.fetch_all(c).await
    }
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_string())
}

/// The chat columns, with the unread count: received messages (reactions aside) of the chat
/// newer than its `read_at`, a range of `inbound_by_chat` per address.
const CHAT_SELECT: &str = "SELECT c.instance_id, c.jid, c.tenant_id, c.lid, c.push_name, \
     c.last_at, (SELECT COUNT(*) FROM inbound i WHERE i.tenant_id = c.tenant_id \
         AND i.chat_jid IN (c.jid, COALESCE(c.lid, c.jid)) AND i.received_at > c.read_at \
         AND i.instance_id = c.instance_id AND i.kind <> 'reaction') AS unread FROM chats c";

fn chat_from_row<DB: Backend>(row: &DB::Row) -> Result<ChatRecord> {
    let unread: i64 = DB::col(row, "unread")?;
    Ok(ChatRecord {
        tenant_id: DB::col(row, "tenant_id")?,
        instance_id: DB::col(row, "instance_id")?,
        jid: DB::col(row, "jid")?,
        lid: DB::col(row, "lid")?,
        push_name: DB::col(row, "push_name")?,
        last_at: ts(DB::col(row, "last_at")?)?,
        unread: unread.max(0) as u64,
    })
}

/// The statement reading one address's sent messages, newest first, before `before`.
fn sent_arm<DB: Backend>(query: &ChatQuery<'_>, jid: &str) -> Built {
    let b = DB::BYTE_ORDER;
    let mut s = Built::new(&format!("SELECT {MESSAGE_COLUMNS} FROM messages "));
    s.push("WHERE tenant_id = ? AND to_jid = ?", [text(query.tenant_id), text(jid)]);
    if let Some(i) = query.instance_id {
        s.push(" AND instance_id = ?", [text(i)]);
    }
    s.push(" AND created_at >= ?", [Arg::Int(cut_millis(query.since))]);
    match query.before {
        None => {}
        // A sent message sorts after a received one of the same millisecond: those of the
        // cursor's millisecond were on the page before.
        Some(ChatEntryPosition::Received { at, .. }) => {
            s.push(" AND created_at < ?", [Arg::Int(to_millis(*at))]);
        }
        Some(ChatEntryPosition::Sent { at, id }) => {
            let at = to_millis(*at);
            s.push(
                &format!(" AND (created_at < ? OR (created_at = ? AND id {b} < ?))"),
                [Arg::Int(at), Arg::Int(at), text(id)],
            );
        }
    }
    s.push(&format!(" ORDER BY created_at DESC, id {b} DESC LIMIT ?"), [limit(query)]);
    s
}

/// The statement reading one address's received messages, newest first, before `before`.
fn received_arm<DB: Backend>(query: &ChatQuery<'_>, jid: &str) -> Built {
    let b = DB::BYTE_ORDER;
    let mut s = Built::new(&format!("SELECT {INBOUND_COLUMNS} FROM inbound "));
    s.push("WHERE tenant_id = ? AND chat_jid = ?", [text(query.tenant_id), text(jid)]);
    if let Some(i) = query.instance_id {
        s.push(" AND instance_id = ?", [text(i)]);
    }
    s.push(" AND received_at >= ?", [Arg::Int(cut_millis(query.since))]);
    match query.before {
        None => {}
        Some(ChatEntryPosition::Sent { at, .. }) => {
            s.push(" AND received_at <= ?", [Arg::Int(to_millis(*at))]);
        }
        Some(ChatEntryPosition::Received { at, instance_id, wa_id }) => {
            let at = to_millis(*at);
            s.push(
                &format!(
                    " AND (received_at < ? OR (received_at = ? AND (instance_id {b} < ? \
                     OR (instance_id = ? AND wa_id {b} < ?))))"
                ),
                [Arg::Int(at), Arg::Int(at), text(instance_id), text(instance_id), text(wa_id)],
            );
        }
    }
    s.push(
        &format!(" ORDER BY received_at DESC, instance_id {b} DESC, wa_id {b} DESC LIMIT ?"),
        [limit(query)],
    );
    s
}

fn limit(query: &ChatQuery<'_>) -> Arg {
    Arg::Int(i64::from(query.limit))
}

#[async_trait]
impl<DB: Backend> ChatStore for SqlStore<DB> {
    async fn list_chats(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        since: DateTime<Utc>,
        after: Option<&ChatPosition>,
        limit: u32,
    ) -> Result<Vec<ChatRecord>> {
        let b = DB::BYTE_ORDER;
        let mut s = Built::new(CHAT_SELECT);
        s.push(" WHERE c.tenant_id = ?", [text(tenant_id)]);
        if let Some(i) = instance_id {
            s.push(" AND c.instance_id = ?", [text(i)]);
        }
        s.push(" AND c.last_at >= ?", [Arg::Int(cut_millis(since))]);
        if let Some(p) = after {
            let at = to_millis(p.last_at);
            s.push(
                &format!(
                    " AND (c.last_at < ? OR (c.last_at = ? AND (c.instance_id {b} < ? \
                     OR (c.instance_id = ? AND c.jid {b} < ?))))"
                ),
                [
                    Arg::Int(at),
                    Arg::Int(at),
                    text(&p.instance_id),
                    text(&p.instance_id),
                    text(&p.jid),
                ],
            );
        }
        s.push(
            &format!(" ORDER BY c.last_at DESC, c.instance_id {b} DESC, c.jid {b} DESC LIMIT ?"),
            [Arg::Int(i64::from(limit))],
        );
        let rows = s.fetch_all::<DB>(&mut *self.conn().await?).await?;
        rows.iter().map(chat_from_row::<DB>).collect()
    }

    async fn get_chat(&self, instance_id: &str, jid: &str) -> Result<Option<ChatRecord>> {
        let mut s = Built::new(CHAT_SELECT);
        s.push(
            " WHERE c.instance_id = ? AND (c.jid = ? OR c.lid = ?)",
            [text(instance_id), text(jid), text(jid)],
        );
        s.push(" ORDER BY c.last_at DESC LIMIT 1", []);
        let rows = s.fetch_all::<DB>(&mut *self.conn().await?).await?;
        rows.first().map(chat_from_row::<DB>).transpose()
    }

    async fn chat_entries(&self, query: &ChatQuery<'_>) -> Result<Vec<ChatEntry>> {
        let mut conn = self.conn().await?;
        let mut entries = Vec::new();
        // One index range per address and direction, each at most a page; merged here.
        for jid in query.jids {
            for row in sent_arm::<DB>(query, jid).fetch_all::<DB>(&mut conn).await? {
                entries.push(ChatEntry::Sent(message_from_row::<DB>(&row)?));
            }
            for row in received_arm::<DB>(query, jid).fetch_all::<DB>(&mut conn).await? {
                entries.push(ChatEntry::Received(inbound_from_row::<DB>(&row)?));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.position()));
        entries.dedup_by_key(|e| e.position());
        entries.truncate(query.limit as usize);
        Ok(entries)
    }

    async fn mark_chat_read(
        &self,
        instance_id: &str,
        jid: &str,
        up_to: DateTime<Utc>,
    ) -> Result<bool> {
        let _gate = DB::gate(self).await;
        let n = q::<DB>(
            "UPDATE chats SET read_at = CASE WHEN $1 > read_at THEN $1 ELSE read_at END \
             WHERE instance_id = $2 AND (jid = $3 OR lid = $3)",
        )
        .bind(to_millis(up_to))
        .bind(instance_id)
        .bind(jid)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(n > 0)
    }

    async fn prune_chats(&self, before: DateTime<Utc>) -> Result<u64> {
        let _gate = DB::gate(self).await;
        q::<DB>("DELETE FROM chats WHERE last_at < $1")
            .bind(cut_millis(before))
            .execute(&mut *self.conn().await?)
            .await
    }
}
