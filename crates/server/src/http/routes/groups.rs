//! A number's groups: `GET /v1/instances/{id}/groups` lists them, `…/groups/{jid}` gives one
//! with its participants, by phone JID where the LID's phone is known.

use axum::extract::State;
use axum::Json as JsonOut;
use bzapper_core::validate::shown;
use bzapper_core::Jid;
use bzapper_driver::GroupSummary;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Path;
use crate::http::state::AppState;
use crate::model::ids::InstanceId;

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// `<id>@g.us`.
    pub jid: String,
    /// The group's name.
    pub subject: String,
    /// How many participants it has.
    pub size: u32,
    /// This number is an admin of the group.
    pub is_admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// The groups the number is in.
    pub items: Vec<GroupView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantView {
    /// The phone-number JID, when known.
    pub jid: Option<String>,
    /// E.164 with `+`, when known.
    pub phone: Option<String>,
    /// The participant's LID, when known.
    pub lid: Option<String>,
    /// The participant is an admin of the group.
    pub is_admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub group: GroupView,
    /// Everyone in the group.
    pub participants: Vec<ParticipantView>,
}

fn view(g: GroupSummary) -> GroupView {
    GroupView { jid: g.jid.to_string(), subject: g.subject, size: g.size, is_admin: g.is_admin }
}

/// List a number's groups
///
/// The groups the number is in, asked of WhatsApp through its live connection (it must be
/// connected: 409 `instance_unavailable`). 502 `whatsapp_refused`, 503 `network_unavailable`.
#[utoipa::path(get, path = "/v1/instances/{id}/groups", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses(
        (status = 200, body = GroupList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`instance_unavailable`: not connected"),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn list(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<JsonOut<GroupList>> {
    let groups = state.app.live.groups(&tenant.tenant_id, &id).await?;
    Ok(JsonOut(GroupList { items: groups.into_iter().map(view).collect() }))
}

/// Get a group
///
/// One group the number is in, with its participants and their admin roles, asked of WhatsApp
/// through the number's live connection. 404 when the number is not in that group.
#[utoipa::path(get, path = "/v1/instances/{id}/groups/{jid}", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id"), ("jid" = String, Path, description = "group JID (`<id>@g.us`)")),
    responses(
        (status = 200, body = GroupDetail),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`instance_unavailable`: not connected"),
        (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((id, jid)): Path<(InstanceId, String)>,
) -> ApiResult<JsonOut<GroupDetail>> {
    let group = Jid::parse(&jid).ok().filter(Jid::is_group).ok_or_else(|| {
        ApiError::invalid(format!("`{}` is not a group JID (<id>@g.us)", shown(&jid)))
    })?;
    let (summary, members) = state.app.live.group(&tenant.tenant_id, &id, &group).await?;
    let participants = members
        .into_iter()
        .map(|p| ParticipantView {
            phone: p.jid.as_ref().and_then(Jid::phone).map(|p| p.e164()),
            jid: p.jid.map(|j| j.to_string()),
            lid: p.lid.map(|l| l.to_string()),
            is_admin: p.is_admin,
        })
        .collect();
    Ok(JsonOut(GroupDetail { group: view(summary), participants }))
}
