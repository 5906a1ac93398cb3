//! The `bzapper` binary: parses flags and env vars into a configuration and runs the gateway
//! (`serve`), the shared simulated network (`simnet`) or a helper (`keygen`, `healthcheck`),
//! or talks to a running gateway over its HTTP API (`instances`, `send`, `events`, `cluster`,
//! `campaign`, in [`commands`]). The gateway itself lives in `bzapper-server`.

mod client;
mod commands;
mod logging;
mod progress;
mod qr;
mod sse;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bzapper_server::media::MediaStorage;
use bzapper_server::secrets::Source;
use bzapper_server::startup::config as defaults;
use bzapper_server::startup::config::{Limit, QuotaLimits, RateLimit};
use bzapper_server::{Application, Config, DriverKind};
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use logging::LogArgs;

#[derive(Parser)]
#[command(
    name = "bzapper",
    version,
    about = "A WhatsApp gateway for a pool of numbers that keeps them alive"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    // Boxed: the serve flags outweigh every other command's.
    Serve(Box<ServeArgs>),
    /// Run the simulated WhatsApp network as its own process, for several gateways to share.
    Simnet(SimnetArgs),
    /// Print a new random master key (base64, 32 bytes) for BZAPPER_MASTER_KEY.
    Keygen,
    /// Exit 0 when the gateway at --url answers `GET /readyz` with 200, else 1 (for a
    /// container's HEALTHCHECK).
    Healthcheck(commands::healthcheck::HealthcheckArgs),
    /// Client: list, create, link (QR in the terminal) and manage the numbers of a running
    /// gateway.
    #[command(visible_alias = "instance")]
    Instances(commands::instances::InstancesArgs),
    /// Client: send a text message through a running gateway.
    Send(commands::send::SendArgs),
    /// Client: follow a running gateway's events.
    Events(commands::events::EventsArgs),
    /// Client: the gateway's nodes and the numbers each holds (admin token).
    Cluster(commands::cluster::ClusterArgs),
    /// Client: run a campaign from a CSV file with live progress; look at, pause, resume,
    /// cancel and list campaigns.
    #[command(visible_alias = "campaigns")]
    Campaign(commands::campaign::CampaignArgs),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Address to listen on.
    #[arg(long, env = "BZAPPER_LISTEN", default_value = defaults::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory for the SQLite file, the master key file and the admin token file.
    #[arg(long, env = "BZAPPER_DATA_DIR", default_value = defaults::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Database URL; default: a SQLite file `bzapper.db` in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Use the simulated WhatsApp network, in this process.
    #[arg(long, conflicts_with = "sim_url")]
    sim: bool,
    /// Use a shared simulated network process (`bzapper simnet`) at this URL.
    #[arg(long, env = "BZAPPER_SIM_URL")]
    sim_url: Option<String>,
    /// Use the real WhatsApp driver against the wire-level fake WhatsApp server whose control
    /// API (`bzapper simnet --wire`) is at this URL; the /v1/sim routes drive the fake. Works
    /// only in test builds (the fake's certificate chain is not signed by WhatsApp).
    #[arg(long, env = "BZAPPER_SIM_WIRE_URL", conflicts_with_all = ["sim", "sim_url", "wa_url"])]
    sim_wire_url: Option<String>,
    /// Master key sealing every session (base64 of 32 bytes). When absent, a key file is
    /// created with mode 0600 in the data dir on first start. Env only is advised.
    #[arg(long, env = "BZAPPER_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// Admin token (manages tenants and the simulator). When absent, one is generated on first
    /// start into a 0600 file in the data dir, whose path is printed.
    #[arg(long, env = "BZAPPER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BZAPPER_BODY_LIMIT", default_value_t = defaults::DEFAULT_BODY_LIMIT_BYTES)]
    body_limit: usize,
    /// Warming: a fresh number's daily cap on its first day; it grows each day to the number's
    /// full per_day cap when its warming_days end.
    #[arg(long, env = "BZAPPER_WARMING_FIRST_DAY_CAP", default_value_t = defaults::DEFAULT_WARMING_FIRST_DAY_CAP, value_parser = clap::value_parser!(u32).range(1..))]
    warming_first_day_cap: u32,
    /// Re-warming: a number idle (no send) longer than this many hours goes through a shorter
    /// warm-up again before full volume.
    #[arg(long, env = "BZAPPER_REWARM_AFTER_HOURS", default_value_t = defaults::DEFAULT_REWARM_AFTER_HOURS, value_parser = clap::value_parser!(u64).range(1..=8760))]
    rewarm_after_hours: u64,
    /// Re-warming: how many days the shorter warm-up of an idle number lasts (0 turns
    /// re-warming off).
    #[arg(long, env = "BZAPPER_REWARM_DAYS", default_value_t = defaults::DEFAULT_REWARM_DAYS, value_parser = clap::value_parser!(u32).range(0..=60))]
    rewarm_days: u32,
    /// Health score (0-100) below which a number leaves rotation.
    #[arg(long, env = "BZAPPER_HEALTH_THRESHOLD", default_value_t = defaults::DEFAULT_HEALTH_THRESHOLD, value_parser = clap::value_parser!(u8).range(0..=100))]
    health_threshold: u8,
    /// Before a number's first message to a 1:1 contact, check (through the cached contact
    /// checks) that the recipient is on WhatsApp; one who is not fails with `not_on_whatsapp`
    /// without anything sent. `--first-contact-check=false` turns it off.
    #[arg(long, env = "BZAPPER_FIRST_CONTACT_CHECK", default_value_t = true, action = clap::ArgAction::Set)]
    first_contact_check: bool,
    /// Hours events are kept; SSE clients resume with Last-Event-ID within this window.
    #[arg(long, env = "BZAPPER_EVENT_RETENTION_HOURS", default_value_t = defaults::DEFAULT_EVENT_RETENTION_HOURS, value_parser = clap::value_parser!(u64).range(1..=8760))]
    event_retention_hours: u64,
    /// Days chats (`GET /v1/chats`) show their messages; received messages are kept this long
    /// (or the event retention, when longer). 0 keeps them forever.
    #[arg(long, env = "BZAPPER_CHAT_RETENTION_DAYS", default_value_t = defaults::DEFAULT_CHAT_RETENTION_DAYS, value_parser = clap::value_parser!(u64).range(0..=36500))]
    chat_retention_days: u64,
    /// Seconds between two samples of the dashboard's time series (sends per number, health,
    /// queue depth); 0 turns sampling off. The finest chart step is this interval; those
    /// samples are kept 48 h.
    #[arg(long, env = "BZAPPER_SERIES_SAMPLE_SECS", default_value_t = defaults::DEFAULT_SERIES_SAMPLE_SECS, value_parser = clap::value_parser!(u64).range(0..=3600))]
    series_sample_secs: u64,
    /// Days the hourly time series are kept (sends per hour, health, queue depth).
    #[arg(long, env = "BZAPPER_SERIES_RETENTION_DAYS", default_value_t = defaults::DEFAULT_SERIES_RETENTION_DAYS, value_parser = clap::value_parser!(u64).range(1..=3650))]
    series_retention_days: u64,
    /// Real driver: the WhatsApp websocket URL (default: WhatsApp's own). For tests and
    /// relays only.
    #[arg(long, env = "BZAPPER_WA_URL", conflicts_with_all = ["sim", "sim_url"])]
    wa_url: Option<String>,
    /// Real driver: the WhatsApp Web version to announce, as `major.minor.patch` (default: the
    /// current one, fetched from WhatsApp at each connect).
    #[arg(long, env = "BZAPPER_WA_VERSION", value_parser = parse_wa_version)]
    wa_version: Option<(u32, u32, u32)>,
    /// Several nodes (with a postgres:// DATABASE_URL): this node's id; a fresh one if unset.
    #[arg(long, env = "BZAPPER_NODE_ID")]
    node_id: Option<String>,
    /// Several nodes: where the other nodes reach this node's API (default http://<listen>).
    #[arg(long, env = "BZAPPER_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Several nodes: seconds a node holds a number without renewing; a dead node's numbers
    /// move to the others after this long.
    #[arg(long, env = "BZAPPER_LEASE_SECONDS", default_value_t = defaults::DEFAULT_LEASE_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_seconds: u64,
    /// Stored numbers handshaking with WhatsApp at once while the gateway resumes them at
    /// start (the API serves meanwhile; `GET /readyz` shows how many are still resuming).
    #[arg(long, env = "BZAPPER_RESUME_CONCURRENCY", default_value_t = defaults::DEFAULT_RESUME_CONCURRENCY, value_parser = clap::value_parser!(u64).range(1..=100_000).map(|v| v as usize))]
    resume_concurrency: usize,
    /// Largest media file (upload or fetched URL), in MiB.
    #[arg(long, env = "BZAPPER_MEDIA_MAX_MB", default_value_t = defaults::DEFAULT_MEDIA_MAX_MB, value_parser = clap::value_parser!(u64).range(1..=4096))]
    media_max_mb: u64,
    /// Hours stored media files and cached inbound media are kept.
    #[arg(long, env = "BZAPPER_MEDIA_RETENTION_HOURS", default_value_t = defaults::DEFAULT_MEDIA_RETENTION_HOURS, value_parser = clap::value_parser!(u64).range(1..=8760))]
    media_retention_hours: u64,
    /// Seconds a media URL download may take, from the request to the last byte.
    #[arg(long, env = "BZAPPER_MEDIA_FETCH_TIMEOUT_SECS", default_value_t = defaults::DEFAULT_MEDIA_FETCH_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    media_fetch_timeout_secs: u64,
    /// Where media files (uploads, fetched URLs, cached received media) are kept: `local`, under
    /// the data dir, or an S3-compatible object store, `s3://bucket/prefix`, which every node of
    /// a cluster must share so that any node sends any upload. Checked at start.
    #[arg(long, env = "BZAPPER_MEDIA_STORE", default_value = "local", value_parser = parse_media_store)]
    media_store: MediaStorage,
    /// S3 media store: the endpoint of an S3-compatible server (e.g. `http://127.0.0.1:9000`);
    /// default: AWS's for the region.
    #[arg(long, env = "BZAPPER_MEDIA_S3_ENDPOINT")]
    media_s3_endpoint: Option<String>,
    /// S3 media store: the region (default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, env = "BZAPPER_MEDIA_S3_REGION")]
    media_s3_region: Option<String>,
    /// S3 media store: path-style requests (`endpoint/bucket/key`), which S3-compatible servers
    /// expect; `false` for virtual-hosted style (`bucket.endpoint/key`).
    #[arg(long, env = "BZAPPER_MEDIA_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    media_s3_path_style: bool,
    /// S3 media store: the access key id. Without it, the standard AWS sources are used
    /// (AWS_* variables, web identity, container or instance credentials).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    media_s3_access_key_id: Option<String>,
    /// S3 media store: the secret access key. Env only is advised.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    media_s3_secret_access_key: Option<String>,
    /// Hosts, IP addresses and CIDR ranges, comma-separated, that media URLs, webhooks and
    /// alerts may reach although they are loopback, private, link-local or otherwise reserved
    /// addresses, which are refused by default (e.g. `hooks.internal,10.0.0.5,192.168.0.0/16`).
    /// A host name entry allows that name whatever it resolves to.
    #[arg(long, env = "BZAPPER_OUTBOUND_ALLOW", default_value = defaults::DEFAULT_OUTBOUND_ALLOW, value_parser = parse_outbound_allow, hide_default_value = true)]
    outbound_allow: bzapper_server::outbound::AllowList,
    /// Seconds a client may take to send a request's head (from connecting, or from its first
    /// byte on a kept-alive connection); a slower connection is closed.
    #[arg(long, env = "BZAPPER_HEADER_READ_TIMEOUT_SECS", default_value_t = defaults::DEFAULT_HEADER_READ_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout_secs: u64,
    /// Seconds a request body may pause (send nothing) before it is refused with 408.
    #[arg(long, env = "BZAPPER_BODY_READ_TIMEOUT_SECS", default_value_t = defaults::DEFAULT_BODY_READ_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed
    /// (a response being sent, such as an SSE stream, is never idle).
    #[arg(long, env = "BZAPPER_IDLE_TIMEOUT_SECS", default_value_t = defaults::DEFAULT_IDLE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=86400))]
    idle_timeout_secs: u64,
    /// Client connections served at once; more wait in the listen backlog until one closes.
    /// Keep it below the open-file limit (`ulimit -n`).
    #[arg(long, env = "BZAPPER_MAX_CONNECTIONS", default_value_t = defaults::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..=1_000_000).map(|n| n as usize))]
    max_connections: usize,
    /// Fair shares (0 = unlimited; answered 429 `quota_exceeded`): messages queued or being
    /// sent per tenant, campaigns apart (the whole queue, re-counted from the store every 10 s).
    #[arg(long, env = "BZAPPER_MAX_QUEUED_PER_TENANT", default_value_t = defaults::DEFAULT_MAX_QUEUED_PER_TENANT)]
    max_queued_per_tenant: u64,
    /// Messages queued or being sent per pool of a tenant (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_QUEUED_PER_POOL", default_value_t = defaults::DEFAULT_MAX_QUEUED_PER_POOL)]
    max_queued_per_pool: u64,
    /// Instances (numbers) per tenant (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_INSTANCES_PER_TENANT", default_value_t = defaults::DEFAULT_MAX_INSTANCES_PER_TENANT)]
    max_instances_per_tenant: u64,
    /// Webhooks per tenant (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_WEBHOOKS_PER_TENANT", default_value_t = defaults::DEFAULT_MAX_WEBHOOKS_PER_TENANT)]
    max_webhooks_per_tenant: u64,
    /// Pools per tenant, `default` included (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_POOLS_PER_TENANT", default_value_t = defaults::DEFAULT_MAX_POOLS_PER_TENANT)]
    max_pools_per_tenant: u64,
    /// Campaigns running, scheduled or paused per tenant (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_CAMPAIGNS_IN_FLIGHT", default_value_t = defaults::DEFAULT_MAX_CAMPAIGNS_IN_FLIGHT)]
    max_campaigns_in_flight: u64,
    /// Recipients of a tenant's campaigns in flight, together (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_CAMPAIGN_RECIPIENTS_IN_FLIGHT", default_value_t = defaults::DEFAULT_MAX_CAMPAIGN_RECIPIENTS_IN_FLIGHT)]
    max_campaign_recipients_in_flight: u64,
    /// MiB of stored media per tenant, on this node's disk or in the shared S3 media store
    /// (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_MEDIA_MB_PER_TENANT", default_value_t = defaults::DEFAULT_MAX_MEDIA_MB_PER_TENANT)]
    max_media_mb_per_tenant: u64,
    /// Open `GET /v1/events` streams per tenant on this node (0 = unlimited).
    #[arg(long, env = "BZAPPER_MAX_SSE_STREAMS_PER_TENANT", default_value_t = defaults::DEFAULT_MAX_SSE_STREAMS_PER_TENANT)]
    max_sse_streams_per_tenant: u64,
    /// Requests a second per API key on this node (0 = no limit; answered 429 `rate_limited`
    /// with `Retry-After`). The admin token is not limited.
    #[arg(long, env = "BZAPPER_RATE_LIMIT", default_value_t = defaults::DEFAULT_RATE_LIMIT_PER_SEC)]
    rate_limit: u32,
    /// Requests an API key may send at once above its rate.
    #[arg(long, env = "BZAPPER_RATE_LIMIT_BURST", default_value_t = defaults::DEFAULT_RATE_LIMIT_BURST)]
    rate_limit_burst: u32,
    /// In-process simulator: its reaction model (how WhatsApp reacts to spammy sending;
    /// docs/sending.md): `default` (every rule at its default), `off`, a JSON object of the
    /// settings, or a file holding one. Off unless given.
    #[arg(long, env = "BZAPPER_SIM_REACTIONS", value_parser = parse_reactions, requires = "sim")]
    sim_reactions: Option<bzapper_server::SimReactions>,
    /// In-process simulator: seconds the first QR code lasts.
    #[arg(long, env = "BZAPPER_SIM_QR_FIRST_SECS", default_value_t = defaults::DEFAULT_SIM_QR_FIRST_SECS)]
    sim_qr_first_secs: u64,
    /// In-process simulator: seconds each later QR code lasts.
    #[arg(long, env = "BZAPPER_SIM_QR_NEXT_SECS", default_value_t = defaults::DEFAULT_SIM_QR_NEXT_SECS)]
    sim_qr_next_secs: u64,
}

#[derive(Args)]
struct SimnetArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Address to listen on.
    #[arg(long, env = "BZAPPER_SIMNET_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Seconds the first QR code lasts.
    #[arg(long, default_value_t = defaults::DEFAULT_SIM_QR_FIRST_SECS)]
    qr_first_secs: u64,
    /// Seconds each later QR code lasts.
    #[arg(long, default_value_t = defaults::DEFAULT_SIM_QR_NEXT_SECS)]
    qr_next_secs: u64,
    /// The reaction model (docs/sending.md): `default` (every rule at its default), `off`, a
    /// JSON object of the settings, or a file holding one. Off unless given.
    #[arg(long, visible_alias = "sim-reactions", value_parser = parse_reactions, conflicts_with = "wire")]
    reactions: Option<bzapper_server::SimReactions>,
    /// Run the wire-level fake WhatsApp server instead (`crates/wafake`): real clients
    /// connect to it over WebSocket; its control API (`GET /wire` gives the WebSocket URL) is
    /// served on `--listen`. For clients built with the certificate check off only.
    #[arg(long)]
    wire: bool,
    /// With `--wire`: the address of the fake's WebSocket listener (default: the IP of
    /// `--listen`, any free port).
    #[arg(long, requires = "wire")]
    ws_listen: Option<SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    quiet_library_backtraces();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

/// Errors that whatsapp-rust only logs as warnings are `anyhow` errors, and `anyhow` captures
/// a backtrace for each when `RUST_BACKTRACE` is set (as it often is in containers and CI):
/// symbolizing it costs milliseconds of CPU and megabytes of DWARF caches. Two such warnings
/// per login (a peer that answers an IQ oddly) were 20,000 backtraces in a restart of 10,000
/// numbers, and a gateway log of 395 MB. `RUST_LIB_BACKTRACE=0` turns off only those
/// captures; a panic still prints its backtrace under `RUST_BACKTRACE`. An operator who sets
/// `RUST_LIB_BACKTRACE` keeps theirs. Set before the runtime starts, while this is the only
/// thread.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

async fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(a) => {
            logging::init(a.log.log_format);
            // Each connected number is a socket.
            bzapper_server::startup::fd_limit::raise_and_log();
            serve(*a).await
        }
        Command::Simnet(a) if a.wire => {
            logging::init(a.log.log_format);
            bzapper_server::startup::fd_limit::raise_and_log();
            bzapper_wafake::control::serve_simnet(a.listen, a.ws_listen, shutdown_signal()).await
        }
        Command::Simnet(a) => {
            logging::init(a.log.log_format);
            bzapper_server::startup::fd_limit::raise_and_log();
            let config = bzapper_driver_config(a.qr_first_secs, a.qr_next_secs);
            let reactions = a.reactions.unwrap_or_default();
            bzapper_server::serve_simnet(a.listen, config, reactions, shutdown_signal()).await
        }
        Command::Keygen => {
            println!("{}", bzapper_server::secrets::new_master_key_base64());
            Ok(())
        }
        Command::Healthcheck(a) => client_exit(commands::healthcheck::run(a).await),
        Command::Instances(a) => client_exit(commands::instances::run(a).await),
        Command::Send(a) => client_exit(commands::send::run(a).await),
        Command::Events(a) => client_exit(commands::events::run(a).await),
        Command::Cluster(a) => client_exit(commands::cluster::run(a).await),
        Command::Campaign(a) => client_exit(commands::campaign::run(a).await),
    }
}

/// A client command's failure: one line on stderr (the API's error code and message, or the
/// URL that could not be reached) and exit status 1.
fn client_exit(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("bzapper: error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

fn bzapper_driver_config(first: u64, next: u64) -> bzapper_server::SimConfig {
    bzapper_server::SimConfig {
        qr_first: Duration::from_secs(first),
        qr_next: Duration::from_secs(next),
        ..Default::default()
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let format = a.log.log_format;
    let app = Application::build(config_from(a)).await.context("the gateway could not start")?;
    logging::announce(format, &format!("bZapper listening on http://{}", app.local_addr()));
    let token = match app.admin_token_source() {
        Source::Created(p) => format!("admin token generated into {}", p.display()),
        Source::File(p) => format!("admin token read from {}", p.display()),
        Source::Env => "admin token from BZAPPER_ADMIN_TOKEN".to_string(),
    };
    logging::announce(format, &token);
    app.run(shutdown_signal()).await
}

/// The gateway's configuration from `serve`'s flags and env vars.
fn config_from(a: ServeArgs) -> Config {
    let mut config = Config::new(a.data_dir);
    config.listen = a.listen;
    config.database_url = a.database_url;
    config.driver = match (a.sim, a.sim_url, a.sim_wire_url) {
        (_, _, Some(url)) => DriverKind::SimWire(url),
        (_, Some(url), None) => DriverKind::SimRemote(url),
        (true, None, None) => DriverKind::Sim,
        (false, None, None) => DriverKind::WhatsApp,
    };
    config.master_key = a.master_key.map(Into::into);
    config.admin_token = a.admin_token.map(Into::into);
    config.body_limit_bytes = a.body_limit;
    config.warming_first_day_cap = a.warming_first_day_cap;
    config.health_threshold = a.health_threshold;
    config.first_contact_check = a.first_contact_check;
    config.rewarm_after = Duration::from_secs(a.rewarm_after_hours * 3600);
    config.rewarm_days = a.rewarm_days;
    config.event_retention = Duration::from_secs(a.event_retention_hours * 3600);
    config.chat_retention =
        (a.chat_retention_days > 0).then(|| Duration::from_secs(a.chat_retention_days * 86_400));
    config.series.sample_every = Duration::from_secs(a.series_sample_secs);
    config.series.retention = Duration::from_secs(a.series_retention_days * 86_400);
    config.test_hooks.sim_qr_first = Duration::from_secs(a.sim_qr_first_secs);
    config.test_hooks.sim_qr_next = Duration::from_secs(a.sim_qr_next_secs);
    config.test_hooks.sim_reactions = a.sim_reactions.unwrap_or_default();
    config.wa_url = a.wa_url;
    config.wa_version = a.wa_version;
    config.node_id = a.node_id;
    config.advertise_url = a.advertise_url;
    config.lease = Duration::from_secs(a.lease_seconds);
    config.resume_concurrency = a.resume_concurrency;
    config.media_max_bytes = a.media_max_mb * 1024 * 1024;
    config.media_retention = Duration::from_secs(a.media_retention_hours * 3600);
    config.media_fetch_timeout = Duration::from_secs(a.media_fetch_timeout_secs);
    config.media_storage = match a.media_store {
        MediaStorage::Local => MediaStorage::Local,
        MediaStorage::S3(mut s) => {
            s.endpoint = a.media_s3_endpoint;
            s.region = a.media_s3_region;
            s.path_style = a.media_s3_path_style;
            s.access_key_id = a.media_s3_access_key_id;
            s.secret_access_key = a.media_s3_secret_access_key.map(Into::into);
            MediaStorage::S3(s)
        }
    };
    config.outbound_allow = a.outbound_allow;
    config.server_limits = defaults::ServerLimits {
        header_read_timeout: Duration::from_secs(a.header_read_timeout_secs),
        body_read_timeout: Duration::from_secs(a.body_read_timeout_secs),
        idle_timeout: Duration::from_secs(a.idle_timeout_secs),
        max_connections: a.max_connections,
    };
    config.quotas = QuotaLimits {
        queued_per_tenant: Limit(a.max_queued_per_tenant),
        queued_per_pool: Limit(a.max_queued_per_pool),
        instances: Limit(a.max_instances_per_tenant),
        webhooks: Limit(a.max_webhooks_per_tenant),
        pools: Limit(a.max_pools_per_tenant),
        campaigns_in_flight: Limit(a.max_campaigns_in_flight),
        campaign_recipients: Limit(a.max_campaign_recipients_in_flight),
        media_bytes: Limit(a.max_media_mb_per_tenant.saturating_mul(1024 * 1024)),
        sse_streams: Limit(a.max_sse_streams_per_tenant),
    };
    config.rate_limit = RateLimit { per_sec: a.rate_limit, burst: a.rate_limit_burst };
    config
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// `2.3000.1234567` → `(2, 3000, 1234567)`.
fn parse_outbound_allow(s: &str) -> Result<bzapper_server::outbound::AllowList, String> {
    // The error names the flag and the entry already; clap adds the value.
    s.parse().map_err(|e: bzapper_server::outbound::BadEntry| e.to_string())
}

/// `--media-store`: `local` or `s3://bucket/prefix`.
fn parse_media_store(s: &str) -> Result<MediaStorage, String> {
    MediaStorage::parse(s)
}

fn parse_reactions(s: &str) -> Result<bzapper_server::SimReactions, String> {
    bzapper_server::SimReactions::from_flag(s)
}

fn parse_wa_version(s: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<u32> = s
        .split('.')
        .map(|p| {
            p.parse::<u32>().map_err(|_| format!("`{s}` is not a version like 2.3000.1234567"))
        })
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [a, b, c] => Ok((a, b, c)),
        _ => Err(format!("`{s}` is not a version like 2.3000.1234567")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bzapper serve` with no flag (and none of its env vars set) runs on exactly the
    /// defaults `Config::new` has: both come from `config::DEFAULT_*`.
    #[test]
    fn serve_without_flags_is_config_new() {
        let vars =
            std::env::vars().filter(|(k, _)| k.starts_with("BZAPPER_") || k == "DATABASE_URL");
        if let Some((k, _)) = vars.into_iter().next() {
            eprintln!("skipped: {k} is set");
            return;
        }
        let Command::Serve(a) = Cli::parse_from(["bzapper", "serve"]).command else {
            panic!("serve parses as serve")
        };
        let from_flags = config_from(*a);
        let expected = Config::new(defaults::DEFAULT_DATA_DIR);
        assert_eq!(format!("{from_flags:?}"), format!("{expected:?}"));
    }

    #[test]
    fn the_rewarm_flags_reach_the_config() {
        let args = ["bzapper", "serve", "--rewarm-after-hours", "24", "--rewarm-days", "3"];
        let Command::Serve(a) = Cli::parse_from(args).command else { panic!("serve") };
        let c = config_from(*a);
        assert_eq!((c.rewarm_after, c.rewarm_days), (Duration::from_secs(24 * 3600), 3));
        let refused = ["bzapper", "serve", "--rewarm-after-hours", "0"];
        assert!(Cli::try_parse_from(refused).is_err(), "idle for no time is not idle");
    }
}
