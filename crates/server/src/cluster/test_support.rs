//! For tests of several nodes: a fresh PostgreSQL schema per test, dropped afterwards, and
//! nodes joined on it. They need `BZAPPER_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`); without it [`Schema::new`] says once that the
//! tests are skipped and returns `None`.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{MasterKey, NodeInfo, PgStore, Sealer};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::Connection;

use super::Cluster;

const PG_URL_VAR: &str = "BZAPPER_TEST_DATABASE_URL";

/// A schema of its own in the test database, with everything in it dropped on drop.
pub struct Schema {
    pub options: PgConnectOptions,
    /// Straight SQL on the schema, for what no trait does (moving a lease's time back).
    pub raw: PgPool,
    /// Every node of the test seals with it, as every node of a cluster must.
    pub key: MasterKey,
    url: String,
    name: String,
}

impl Schema {
    pub async fn new() -> Option<Schema> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        static SAID: std::sync::Once = std::sync::Once::new();
        let Ok(url) = std::env::var(PG_URL_VAR) else {
            SAID.call_once(|| {
                // Straight to the stream, so that it shows although the harness captures
                // test output.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL cluster tests skipped: set {PG_URL_VAR} (for example \
                     postgres://postgres@127.0.0.1:5432/test) to run them"
                );
            });
            return None;
        };
        let name = format!(
            "bzs_{}_{}_{:08x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut conn =
            sqlx::PgConnection::connect(&url).await.expect("connecting to the test database");
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let options = PgConnectOptions::from_str(&url).unwrap().options([("search_path", &name)]);
        let raw = PgPool::connect_with(options.clone()).await.unwrap();
        Some(Schema { options, raw, key: MasterKey::generate(), url, name })
    }

    /// A store on the schema (the first one also creates the tables).
    pub async fn store(&self) -> Arc<PgStore> {
        let sealer = Sealer::new(self.key.clone());
        Arc::new(PgStore::open_with(self.options.clone(), sealer).await.unwrap())
    }
}

/// A node named `id` with a store of its own on the schema.
pub async fn join(schema: &Schema, id: &str, ttl: Duration) -> (Arc<Cluster>, Arc<PgStore>) {
    let store = schema.store().await;
    let node = NodeInfo {
        id: id.into(),
        url: format!("http://{id}.test:8080"),
        started_at: chrono::Utc::now(),
    };
    let cluster = Cluster::join(store.clone(), node, ttl).await.unwrap();
    (cluster, store)
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside the test's runtime: clean up on a thread
        // with a runtime of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {done:?}", self.name);
        }
    }
}
