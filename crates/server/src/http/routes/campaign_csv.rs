//! Campaigns from a CSV file, read by the server (`bzapper_core::recipients_csv`, the reader
//! the CLI uses): `POST /v1/campaigns/preview` checks a file and a template and shows the
//! first texts as they would be sent; `POST /v1/campaigns/csv` creates the campaign from the
//! file. Beside `POST /v1/campaigns` (JSON recipients), whose contract is unchanged: both
//! check each recipient with the same rules (`campaigns::RecipientRules`), naming a recipient
//! by its line in the file.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json as JsonOut, Router};
use bzapper_core::recipients_csv::{self, CsvError, CsvRecipient};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::campaigns::Created;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{idempotency_key, Json};
use crate::http::routes::campaigns::{
    build, duplicate, parse_template, view, CampaignView, CreateCampaign, RecipientInput,
    RecipientRules, MAX_BODY_BYTES,
};
use crate::http::routes::delivery_options::DeliveryOptions;
use crate::http::state::AppState;
use crate::model::time::now;
use crate::runtime::campaigns::window::ScheduleSpec;
use crate::runtime::campaigns::MAX_RECIPIENTS;

/// Texts a preview shows unless asked otherwise, and the most it shows.
const DEFAULT_PREVIEWS: u32 = 5;
const MAX_PREVIEWS: u32 = 50;
/// Problems a preview lists (it counts them all).
const MAX_PROBLEMS: usize = 100;
/// The campaign id a preview draws spintax choices with: the real campaign draws its own, so
/// the choices shown are examples (the fields filled in are the real ones).
const PREVIEW_ID: &str = "cmp_preview";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns/preview", post(preview).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/v1/campaigns/csv", post(create).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewCampaign {
    /// The CSV text (RFC 4180: a header row, then one row per recipient; quoted commas and
    /// line breaks, CRLF or LF, a UTF-8 byte order mark).
    pub csv: String,
    /// The column holding the phone number (any case); default `phone`, else `to`.
    pub phone_column: Option<String>,
    /// The template, as on `POST /v1/campaigns`: `{{column}}` placeholders and spintax.
    pub template: String,
    /// How many texts to render, from the first rows (0 to 50, default 5).
    #[schema(minimum = 0, maximum = 50)]
    pub previews: Option<u32>,
}

/// What a file and a template come to, before anything is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPreview {
    /// Data rows read (recipients, problems included).
    pub recipients: u32,
    /// The header's columns other than the phone's: the fields a template can use.
    pub columns: Vec<String>,
    /// The fields the template uses.
    pub fields_used: Vec<String>,
    /// How many texts the template's spintax can give (1 without choices).
    pub variants: u64,
    /// Whether `POST /v1/campaigns/csv` would accept these recipients (no problem found).
    pub ok: bool,
    /// How many rows have a problem.
    pub problems_total: u32,
    /// The first 100 problems, by line.
    pub problems: Vec<CsvProblem>,
    /// The first rows' texts, rendered as they will be sent. Spintax choices are drawn again
    /// for the campaign (from its id), so they may differ; the fields are the real ones.
    pub previews: Vec<PreviewText>,
}

/// A row that would refuse the campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsvProblem {
    /// The line of the file the row starts on (1 is the header).
    pub line: u64,
    /// `invalid_recipient`, `duplicate_recipient`, `unknown_field` or `invalid_request`.
    pub code: String,
    /// What is wrong with the row, in words.
    pub message: String,
}

/// One row's text.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewText {
    /// The line of the file the row starts on.
    pub line: u64,
    /// The recipient, normalised (a JID).
    pub to: String,
    /// The template rendered for this row, as it would be sent.
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaignFromCsv {
    /// 1 to 64 characters.
    pub name: String,
    /// The text, with `{{column}}` placeholders filled from each row.
    pub template: String,
    /// The CSV text, as on `POST /v1/campaigns/preview`; 1 to 100,000 rows.
    pub csv: String,
    /// The column holding the phone number (any case); default `phone`, else `to`.
    pub phone_column: Option<String>,
    /// The pool whose numbers send it (default `default`).
    pub pool: Option<String>,
    /// Send only inside this window (any time when absent).
    pub schedule: Option<ScheduleSpec>,
    /// Every recipient's `ttl_seconds`.
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<i64>,
    /// Every recipient's `send_at` (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub send_at: Option<String>,
}

/// The rows of `csv`, or the file's problem as a 400 `invalid_csv` naming its line.
fn read_csv(csv: &str, phone_column: Option<&str>) -> ApiResult<Vec<CsvRecipient>> {
    let rows = recipients_csv::recipients(csv, phone_column).map_err(|e: CsvError| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_csv", e.to_string())
    })?;
    if rows.len() > MAX_RECIPIENTS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_recipients",
            format!(
                "a campaign takes at most {MAX_RECIPIENTS} recipients, not {}; split it",
                rows.len()
            ),
        ));
    }
    Ok(rows)
}

/// A row as the JSON body's recipient: every column a string field.
fn recipient(row: &CsvRecipient) -> RecipientInput {
    RecipientInput {
        to: row.to.clone(),
        fields: row
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<BTreeMap<_, _>>(),
        ttl_seconds: None,
        send_at: None,
    }
}

/// Names recipient `i` of `rows` by its line.
fn by_line(rows: &[CsvRecipient]) -> impl Fn(usize) -> String + '_ {
    move |i| match rows.get(i) {
        Some(r) => format!("line {} (recipients[{i}])", r.line),
        None => format!("recipients[{i}]"),
    }
}

/// Preview a campaign from a CSV file
///
/// Checks a CSV file and a template and renders the first rows' texts; stores nothing.
/// Problems with rows are listed (with their lines) in a 200 answer; a file that cannot be
/// read at all is a 400.
#[utoipa::path(post, path = "/v1/campaigns/preview", tag = "campaigns", security(("bearer" = [])),
    request_body = PreviewCampaign,
    responses(
        (status = 200, body = CampaignPreview, description = "the rows read, their problems by line, and the first texts"),
        (status = 400, body = ErrorBody, description = "`invalid_csv`: the file cannot be read (the message names the line): empty, no phone column, a row of the wrong width, no phone in a row, no row after the header; or malformed JSON"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_template`, `too_many_recipients` or `invalid_request`"),
    ))]
pub async fn preview(
    _tenant: Tenant,
    Json(body): Json<PreviewCampaign>,
) -> ApiResult<JsonOut<CampaignPreview>> {
    let wanted = body.previews.unwrap_or(DEFAULT_PREVIEWS);
    if wanted > MAX_PREVIEWS {
        return Err(ApiError::invalid(format!("`previews` must be between 0 and {MAX_PREVIEWS}")));
    }
    let template = parse_template(&body.template)?;
    let rows = read_csv(&body.csv, body.phone_column.as_deref())?;
    let label = by_line(&rows);
    let rules = RecipientRules {
        id: PREVIEW_ID,
        template: &template,
        accepted_at: now(),
        defaults: DeliveryOptions::default(),
        label: &label,
    };
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    let (mut problems, mut problems_total, mut previews) = (Vec::new(), 0u32, Vec::new());
    for (i, row) in rows.iter().enumerate() {
        let checked = rules.check(i, recipient(row)).and_then(|(r, text)| {
            match seen.insert(r.to.to_string(), i) {
                Some(first) => Err(duplicate(&label, i, first, &r.to)),
                None => Ok((r, text)),
            }
        });
        match checked {
            Ok((r, text)) if previews.len() < wanted as usize => {
                previews.push(PreviewText { line: row.line, to: r.to.to_string(), text });
            }
            Ok(_) => {}
            Err(e) => {
                problems_total += 1;
                if problems.len() < MAX_PROBLEMS {
                    problems.push(CsvProblem {
                        line: row.line,
                        code: e.code.to_string(),
                        message: e.message,
                    });
                }
            }
        }
    }
    let columns =
        rows.first().map(|r| r.fields.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    Ok(JsonOut(CampaignPreview {
        recipients: rows.len() as u32,
        columns,
        fields_used: template.fields().into_iter().map(str::to_string).collect(),
        variants: template.variants(),
        ok: problems_total == 0,
        problems_total,
        problems,
        previews,
    }))
}

/// Create a campaign from a CSV file
///
/// Creates a campaign from a CSV file: every column but the phone's is a field; checked and
/// stored exactly as `POST /v1/campaigns` does, each recipient named by its line.
#[utoipa::path(post, path = "/v1/campaigns/csv", tag = "campaigns", operation_id = "create_from_csv", security(("bearer" = [])),
    request_body = CreateCampaignFromCsv,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key returns the campaign it first created, and creates nothing")),
    responses(
        (status = 201, body = CampaignView),
        (status = 200, body = CampaignView, description = "the campaign created earlier with this `Idempotency-Key`"),
        (status = 400, body = ErrorBody, description = "`invalid_csv` (the message names the line), or malformed JSON"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: campaigns or campaign recipients in flight per tenant; or `rate_limited` (`Retry-After`)"),
        (status = 422, body = ErrorBody, description = "as `POST /v1/campaigns`, each recipient named `line N (recipients[i])`"),
    ))]
pub async fn create(
    tenant: Tenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<CreateCampaignFromCsv>,
) -> ApiResult<(StatusCode, JsonOut<CampaignView>)> {
    let key = idempotency_key(&headers)?;
    let rows = read_csv(&body.csv, body.phone_column.as_deref())?;
    let campaign = CreateCampaign {
        name: body.name,
        template: body.template,
        recipients: rows.iter().map(recipient).collect(),
        pool: body.pool,
        schedule: body.schedule,
        ttl_seconds: body.ttl_seconds,
        send_at: body.send_at,
    };
    let tenant_id = tenant.tenant_id;
    let label = by_line(&rows);
    let created = state
        .app
        .campaigns
        .create(&tenant_id, key, |pools| build(&tenant_id, campaign, pools, &label))
        .await?;
    Ok(match created {
        Created::New(r) => (StatusCode::CREATED, JsonOut(view(r))),
        Created::Earlier(r) => (StatusCode::OK, JsonOut(view(r))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_named_by_their_line() {
        let rows = recipients_csv::recipients(
            "phone,name\n+5511988887777,Ana\n\n+5511988887778,Bo\n",
            None,
        )
        .unwrap();
        let label = by_line(&rows);
        assert_eq!(label(1), "line 4 (recipients[1])");
        assert_eq!(label(7), "recipients[7]");
        let r = recipient(&rows[0]);
        assert_eq!(r.fields["name"], "Ana");
    }
}
