//! Campaigns over HTTP: `POST /v1/campaigns` checks everything and stores the campaign with
//! its recipients before answering; `GET` reads progress, per-number counts and the finish
//! estimate; `pause`, `resume` and `cancel` change its status. The sending itself is the
//! runner's (`crate::runtime::campaigns`).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json as JsonOut, Router};
use bzapper_core::{validate, Jid};
use bzapper_store::{CampaignRecipient, CampaignRecord, CampaignStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::campaigns::{CampaignReport, Created};
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{idempotency_key, Json, Path};
use crate::http::routes::delivery_options::DeliveryOptions;
use crate::http::routes::messages::MAX_TEXT_CHARS;
use crate::http::state::AppState;
use crate::model::ids::{new_ordered_id, CampaignId};
use crate::model::time::now;
use crate::runtime::campaigns::progress::{NumberTotals, Totals};
use crate::runtime::campaigns::template::CampaignTemplate;
use crate::runtime::campaigns::window::{ScheduleSpec, Window};
use crate::runtime::campaigns::{Action, MAX_RECIPIENTS};

/// The largest body `POST /v1/campaigns` takes: room for [`MAX_RECIPIENTS`] recipients with a
/// few short fields each. Other routes keep the API's 1 MiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", post(create).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).get(list))
        .route("/v1/campaigns/{id}", get(get_one))
        .route("/v1/campaigns/{id}/pause", post(pause))
        .route("/v1/campaigns/{id}/resume", post(resume))
        .route("/v1/campaigns/{id}/cancel", post(cancel))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// 1 to 64 characters.
    pub name: String,
    /// The text, with `{{field}}` placeholders filled from each recipient's `fields`.
    pub template: String,
    /// 1 to 100,000 recipients, each a different number.
    pub recipients: Vec<RecipientInput>,
    /// The pool whose numbers send it (default `default`).
    pub pool: Option<String>,
    /// Send only inside this window (any time when absent).
    pub schedule: Option<ScheduleSpec>,
    /// Every recipient's `ttl_seconds` unless it gives its own.
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<i64>,
    /// Every recipient's `send_at` unless it gives its own.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub send_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    /// A phone number in any common notation, or a `@s.whatsapp.net`, `@lid` or `@g.us` JID.
    pub to: String,
    /// The values of the template's fields (strings, numbers or booleans).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Not sent within this many seconds after it falls due (1 to 30 days) → `expired`.
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<i64>,
    /// RFC 3339: not sent before this moment (at most a year ahead; a past one means now).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub send_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    /// The campaign's id (`cmp_…`).
    pub id: String,
    /// The campaign's name.
    pub name: String,
    /// `running`, `scheduled` (running, but outside its window), `paused`, `canceled` or
    /// `finished`.
    pub status: String,
    /// The pool whose numbers send it.
    pub pool: String,
    /// The text template as given.
    pub template: String,
    /// The window it sends in; `null`: any time.
    pub schedule: Option<ScheduleSpec>,
    /// The window now, when there is one.
    pub window: Option<WindowView>,
    /// Where every recipient is; the buckets add up to `recipients`.
    pub totals: Totals,
    /// What each number carried (numbers with at least one sent or failed message).
    pub numbers: Vec<NumberTotals>,
    /// When the messages still to send should all be out, at the pool's capacity now and
    /// within the window; `null` when paused, ended, or no number can send (see
    /// `docs/campaigns.md`).
    pub estimated_finish_at: Option<DateTime<Utc>>,
    /// What the pool can send now, which the estimate is based on.
    pub capacity: CapacityView,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was canceled or finished.
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    /// The window is open now.
    pub open: bool,
    /// When it opens next (`null` while open).
    pub opens_at: Option<DateTime<Utc>>,
    /// When it closes (`null` while closed).
    pub closes_at: Option<DateTime<Utc>>,
}

/// What the pool can send now, the basis of the estimate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityView {
    /// Connected numbers of the pool that are in rotation.
    pub numbers: u32,
    /// Sends per hour while the window is open.
    pub per_hour: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    /// The campaigns, newest first.
    pub items: Vec<CampaignView>,
}

pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// A field value as text: strings as they are, numbers and booleans as JSON writes them.
fn field_text(who: &str, name: &str, v: &serde_json::Value) -> ApiResult<String> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ApiError::invalid(format!(
            "{who}.fields.{name} must be a string, a number or a boolean"
        ))),
    }
}

/// How a recipient is named in messages: `recipients[3]` for JSON, `line 5 (recipients[3])`
/// for a CSV upload.
pub(crate) type Label<'a> = &'a dyn Fn(usize) -> String;

/// The JSON body's names: `recipients[i]`.
pub(crate) fn by_index(i: usize) -> String {
    format!("recipients[{i}]")
}

/// What every recipient of one campaign is checked against.
pub(crate) struct RecipientRules<'a> {
    /// The campaign's id: each recipient's spintax choice is drawn from it.
    pub id: &'a str,
    pub template: &'a CampaignTemplate,
    pub accepted_at: DateTime<Utc>,
    pub defaults: DeliveryOptions,
    pub label: Label<'a>,
}

impl RecipientRules<'_> {
    /// Checks recipient `i` (its number, fields, rendered text and delivery options); the
    /// stored recipient and the text its message will carry. Duplicates are the caller's.
    pub(crate) fn check(
        &self,
        i: usize,
        r: RecipientInput,
    ) -> ApiResult<(CampaignRecipient, String)> {
        let who = (self.label)(i);
        let to = Jid::parse_recipient(&r.to)
            .map_err(|e| invalid("invalid_recipient", format!("{who}.to: {e}")))?;
        // Only the fields the template uses are kept.
        let used = self.template.fields();
        let mut fields = BTreeMap::new();
        for (k, v) in &r.fields {
            if used.contains(k.as_str()) {
                fields.insert(k.clone(), field_text(&who, k, v)?);
            }
        }
        let text = self.template.render(self.id, i as u32, &fields).map_err(|missing| {
            invalid(
                "unknown_field",
                format!(
                    "{who} has no field `{missing}`, which the template uses \
                     ({{{{{missing}}}}})"
                ),
            )
        })?;
        if text.trim().is_empty() {
            return Err(ApiError::invalid(format!("the text for {who} is empty")));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ApiError::invalid(format!(
                "the text for {who} is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let what = format!("{who}.");
        let options =
            DeliveryOptions::check(&what, r.ttl_seconds, r.send_at.as_deref(), self.accepted_at)?
                .or(self.defaults);
        let recipient = CampaignRecipient {
            index: i as u32,
            to,
            fields,
            send_at: options.send_at,
            ttl_seconds: options.ttl_seconds,
        };
        Ok((recipient, text))
    }
}

/// The refusal of recipient `i` whose number recipient `first` already has.
pub(crate) fn duplicate(label: Label<'_>, i: usize, first: usize, to: &Jid) -> ApiError {
    invalid(
        "duplicate_recipient",
        format!("{}.to is the same number as {}.to ({to})", label(i), label(first)),
    )
}

/// The template checked and parsed (422 `invalid_template`).
pub(crate) fn parse_template(text: &str) -> ApiResult<CampaignTemplate> {
    if text.trim().is_empty() {
        return Err(invalid("invalid_template", "`template` must not be empty"));
    }
    CampaignTemplate::parse(text)
        .map_err(|e| invalid("invalid_template", format!("`template`: {e}")))
}

/// Checks a campaign and turns it into what is stored; nothing is stored here. `label` names
/// recipient `i` in messages.
pub(crate) fn build(
    tenant_id: &str,
    body: CreateCampaign,
    pools: &[String],
    label: Label<'_>,
) -> ApiResult<(CampaignRecord, Vec<CampaignRecipient>)> {
    let name = validate::name("name", &body.name).map_err(ApiError::invalid)?;
    let template = parse_template(&body.template)?;
    let pool = match &body.pool {
        Some(p) => validate::pool_name(p).map_err(ApiError::invalid)?,
        None => "default".to_string(),
    };
    if !pools.contains(&pool) {
        return Err(invalid(
            "unknown_pool",
            format!("pool `{pool}` does not exist: no number is in it and it was never set up"),
        ));
    }
    let window = match &body.schedule {
        Some(s) => Some(Window::parse(s).map_err(|e| invalid("invalid_schedule", e))?),
        None => None,
    };
    if body.recipients.is_empty() {
        return Err(ApiError::invalid("`recipients` must not be empty"));
    }
    if body.recipients.len() > MAX_RECIPIENTS {
        return Err(invalid(
            "too_many_recipients",
            format!(
                "a campaign takes at most {MAX_RECIPIENTS} recipients, not {}; split it",
                body.recipients.len()
            ),
        ));
    }
    let accepted_at = now();
    let defaults =
        DeliveryOptions::check("", body.ttl_seconds, body.send_at.as_deref(), accepted_at)?;
    // The id comes first: each recipient's spintax choice is drawn from it, and the text
    // checked here is the very one its message will carry.
    let id = new_ordered_id("cmp");
    let rules = RecipientRules { id: &id, template: &template, accepted_at, defaults, label };
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(body.recipients.len());
    let mut recipients = Vec::with_capacity(body.recipients.len());
    for (i, r) in body.recipients.into_iter().enumerate() {
        let (recipient, _text) = rules.check(i, r)?;
        if let Some(first) = seen.insert(recipient.to.to_string(), i) {
            return Err(duplicate(label, i, first, &recipient.to));
        }
        recipients.push(recipient);
    }
    let at = now();
    let campaign = CampaignRecord {
        id,
        tenant_id: tenant_id.to_string(),
        name,
        template: body.template,
        pool,
        schedule: window.map(|w| serde_json::to_value(w.spec()).unwrap_or_default()),
        status: CampaignStatus::Running,
        recipients: recipients.len() as u32,
        next_index: 0,
        skipped: 0,
        created_at: at,
        updated_at: at,
        ended_at: None,
        idempotency_key: None,
    };
    Ok((campaign, recipients))
}

/// The answer for a campaign: its report, shaped.
pub(crate) fn view(r: CampaignReport) -> CampaignView {
    let CampaignReport {
        campaign: c,
        status,
        window,
        now,
        totals,
        numbers,
        estimated_finish_at,
        usable_numbers,
        per_hour,
    } = r;
    CampaignView {
        id: c.id,
        name: c.name,
        status: status.to_string(),
        pool: c.pool,
        template: c.template,
        schedule: window.as_ref().map(Window::spec),
        window: window.as_ref().map(|w| {
            let open = w.is_open(now);
            WindowView {
                open,
                opens_at: if open { None } else { w.next_open(now) },
                closes_at: w.closes_at(now),
            }
        }),
        totals,
        numbers,
        estimated_finish_at,
        capacity: CapacityView {
            numbers: usable_numbers,
            per_hour: (per_hour * 10.0).round() / 10.0,
        },
        created_at: c.created_at,
        updated_at: c.updated_at,
        ended_at: c.ended_at,
    }
}

/// Create a campaign
///
/// Accepts a campaign: a template (with `{{field}}` placeholders and spintax) sent to up to 100,000
/// recipients through a pool. The campaign is checked whole (template, recipients, schedule),
/// stored with every recipient in one transaction, then sent by the runner through the paced queue,
/// inside its schedule's window when it has one. Its progress is reported as `campaign.*` events.
/// The body may be up to 16 MiB.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    request_body = CreateCampaign,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key returns the campaign it first created, and creates nothing")),
    responses(
        (status = 201, body = CampaignView),
        (status = 200, body = CampaignView, description = "the campaign created earlier with this `Idempotency-Key`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: campaigns or campaign recipients in flight per tenant; or `rate_limited` (`Retry-After`)"),
        (status = 422, body = ErrorBody, description = "`invalid_request`, `invalid_template`, `invalid_recipient`, `duplicate_recipient`, `unknown_field`, `too_many_recipients`, `unknown_pool` or `invalid_schedule`"),
    ))]
pub async fn create(
    tenant: Tenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<CreateCampaign>,
) -> ApiResult<(StatusCode, JsonOut<CampaignView>)> {
    let key = idempotency_key(&headers)?;
    let tenant_id = tenant.tenant_id;
    let created = state
        .app
        .campaigns
        .create(&tenant_id, key, |pools| build(&tenant_id, body, pools, &by_index))
        .await?;
    Ok(match created {
        Created::New(r) => (StatusCode::CREATED, JsonOut(view(r))),
        Created::Earlier(r) => (StatusCode::OK, JsonOut(view(r))),
    })
}

/// List campaigns
///
/// The tenant's campaigns, newest first, each with its status and totals.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, body = CampaignList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    tenant: Tenant,
    State(state): State<AppState>,
) -> ApiResult<JsonOut<CampaignList>> {
    let reports = state.app.campaigns.list(&tenant.tenant_id).await?;
    Ok(JsonOut(CampaignList { items: reports.into_iter().map(view).collect() }))
}

/// Get a campaign
///
/// One campaign: status, totals, per-number counts, the schedule's window and the finish estimate.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<CampaignView>> {
    let r = state.app.campaigns.get(&tenant.tenant_id, &CampaignId::new(id)).await?;
    Ok(JsonOut(view(r)))
}

async fn act(
    tenant: Tenant,
    state: AppState,
    id: String,
    action: Action,
) -> ApiResult<JsonOut<CampaignView>> {
    let (tenant, id) = (tenant.tenant_id, CampaignId::new(id));
    let r = state.app.campaigns.apply(&tenant, &id, action).await?;
    Ok(JsonOut(view(r)))
}

/// Pause a campaign
///
/// Stops queueing the campaign's messages; the few already queued still go out. `resume` goes on
/// from there. 409 `campaign_ended` when it has finished or was canceled.
#[utoipa::path(post, path = "/v1/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`campaign_ended`: canceled or finished")))]
pub async fn pause(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<CampaignView>> {
    act(tenant, state, id, Action::Pause).await
}

/// Resume a campaign
///
/// Goes on where a paused campaign stopped. Resuming a running campaign changes nothing. 409
/// `campaign_ended` when it has finished or was canceled.
#[utoipa::path(post, path = "/v1/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`campaign_ended`: canceled or finished")))]
pub async fn resume(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<CampaignView>> {
    act(tenant, state, id, Action::Resume).await
}

/// Cancel a campaign
///
/// Ends the campaign: recipients not yet queued are not sent, and its queued messages fail with
/// `campaign canceled` (one a number is already sending still goes out). 409 `campaign_ended` when
/// it has finished.
#[utoipa::path(post, path = "/v1/campaigns/{id}/cancel", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`campaign_ended`: already finished")))]
pub async fn cancel(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<CampaignView>> {
    act(tenant, state, id, Action::Cancel).await
}
