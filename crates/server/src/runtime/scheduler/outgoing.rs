//! Turns a queued message into what the driver sends: its stored content read back, its media
//! file found among the uploads or downloaded from its URL (streamed into the media store,
//! never held in memory) and made a local file for the driver, and the chat state shown
//! before it.

use bzapper_core::media_duration::duration_secs;
use bzapper_core::Jid;
use bzapper_core::MediaKind;
use bzapper_driver::{ChatState, OutgoingContent, OutgoingMedia, OutgoingMessage};
use bzapper_store::MessageRecord;

use crate::media::{LocalFile, MediaStore, StoredMedia};
use crate::model::content::{ReadyMedia, StoredContent};

/// A message ready for the driver.
pub(super) struct Prepared {
    pub message: OutgoingMessage,
    pub chat_state: ChatState,
    /// A file downloaded for this send alone, deleted once the send is over.
    pub downloaded: Option<StoredMedia>,
    /// The media file the driver reads; a copy out of an object store is removed when this
    /// drops, so it is kept until the send is over.
    pub local_file: Option<LocalFile>,
}

/// Prepares `msg` for sending to `to`. `Err` is why the message cannot be sent at all (the
/// reason it is marked `failed` with); it is never the number's fault.
pub(super) async fn prepare(
    msg: &MessageRecord,
    to: Jid,
    store: &MediaStore,
) -> Result<Prepared, String> {
    let content = StoredContent::from_column(msg.content.as_ref())
        .map_err(|e| format!("the stored message content is unreadable: {e}"))?;
    let mut downloaded = None;
    let mut local_file = None;
    let ready = match &content.media {
        None => None,
        Some(src) => {
            let file = match (&src.media_id, &src.url) {
                // Here, or copied from the node that received the upload.
                (Some(id), _) => store
                    .find(&msg.tenant_id, id)
                    .await
                    .map_err(|e| format!("reading upload `{id}` failed: {e}"))?
                    .ok_or_else(|| {
                        format!("upload `{id}` expired or was deleted before the send")
                    })?,
                (None, Some(url)) => {
                    let url = url::Url::parse(url).map_err(|e| format!("bad media URL: {e}"))?;
                    let file = store
                        .fetch_url(&msg.tenant_id, &url, src.kind, src.file_name.clone())
                        .await
                        .map_err(|e| {
                            format!("downloading the {} failed: {e}", src.kind.as_str())
                        })?;
                    downloaded = Some(file.clone());
                    file
                }
                (None, None) => return Err("the media file has no source".into()),
            };
            let local = match store.local_file(&file).await {
                Ok(local) => local,
                Err(e) => {
                    discard(store, &downloaded).await;
                    return Err(format!("reading the media file failed: {e}"));
                }
            };
            let path = local.path().to_path_buf();
            local_file = Some(local);
            Some(ReadyMedia {
                path,
                mime: file.mime,
                size: file.size,
                sha256: file.sha256,
                file_name: file.file_name,
            })
        }
    };
    let mut body = content.outgoing(&msg.body, ready).ok_or("the media file is missing")?;
    if let OutgoingContent::Media(m) = &mut body {
        m.seconds = media_seconds(m).await;
    }
    let mentions = msg.mentions.iter().filter_map(|m| Jid::parse(m).ok()).collect();
    Ok(Prepared {
        message: OutgoingMessage {
            id: msg.wa_id.clone(),
            to,
            content: body,
            mentions,
            reply_to: content.reply_to.clone(),
        },
        chat_state: content.chat_state(),
        downloaded,
        local_file,
    })
}

/// Deletes a file downloaded for a send that will not happen now.
async fn discard(store: &MediaStore, downloaded: &Option<StoredMedia>) {
    if let Some(file) = downloaded {
        if let Err(e) = store.delete(&file.tenant_id, &file.id).await {
            tracing::warn!(media = %file.id, error = %e, "deleting a downloaded file failed");
        }
    }
}

/// How long an audio or video plays, read from its headers on a blocking thread (a few small
/// reads, but file I/O all the same). `None` when the file is of another kind, unreadable or
/// of a container the parser does not know: the message goes out without a duration.
async fn media_seconds(m: &OutgoingMedia) -> Option<u32> {
    if !matches!(m.media_kind, MediaKind::Audio | MediaKind::Video) {
        return None;
    }
    let (path, mime) = (m.path.clone(), m.mime.clone());
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path).ok()?;
        duration_secs(&mime, &mut file)
    })
    .await
    .ok()
    .flatten()
}
